// A client of one gatehouse sidecar, on `fetch` alone (Node.js 18 or newer, Deno, Bun, a
// browser). Its types are generated from the sidecar's OpenAPI document (`src/openapi.ts`,
// `npm run generate`), so a question the sidecar would refuse for its shape fails to compile.
//
//     const gatehouse = new Gatehouse("http://127.0.0.1:8180");
//     const answer = await gatehouse.isAuthorized({
//       principal: 'User::"vera"', action: "edit", resource: 'Project::"p1"' });
//     answer.decision;            // "Allow"
//     answer.diagnostics.reason;  // ["roles.editor"]
//
// A host fails closed: `may` answers false when the sidecar cannot be reached, times out or
// refuses the question; every other call throws a `GatehouseError` that tells these apart.

import type { components } from "./openapi.js";

type Schemas = components["schemas"];

/** An entity uid: `User::"vera"`, or `{ type: "User", id: "vera" }`; an action may be its id. */
export type Uid = Schemas["Uid"];
/** `{ at_least: token }` (an answer's `entities_at`, or `position()` after a write), or `"full"`. */
export type Consistency = Schemas["Consistency"];
/** `POST /v1/is_authorized`'s question. */
export type Question = Schemas["Question"];
/** One decision: `decision`, `diagnostics` (`reason`, `errors`, `missing`), `policy_version`. */
export type Decision = Schemas["DecisionBody"];
/** A batch's result: a decision, or `{ error }` for a question that could not be asked. */
export type BatchResult = Schemas["BatchResult"];
/** `POST /v1/allowed_actions`'s question. */
export type ActionsQuestion = Schemas["ActionsQuestion"];
/** The actions allowed, denied and needing context. */
export type AllowedActions = Schemas["AllowedBody"];
/** `POST /v1/plan`'s question. */
export type PlanQuestion = Schemas["PlanQuestion"];
/** A plan: the condition every resource the principal may act on satisfies. */
export type Plan = Schemas["PlanBody"];
/** `POST /v1/list`'s question. */
export type ListQuestion = Schemas["ListQuestion"];
/** `POST /v1/list/subjects`'s question: `action`, or `actions` for the members panel. */
export type SubjectsQuestion = Schemas["SubjectsListQuestion"];
/** A page of a list: `ids`, `next_token` (absent on the last page), `listed_by`. */
export type ListPage = Schemas["ListBody"];
/** Where the entity database's changes stand. */
export type Position = Schemas["PositionBody"];
/** The error body's object: `code`, `message`, `field`. */
export type ErrorObject = Schemas["ErrorObject"];

/** One line of a streamed list: an id, with the actions it may take when several were asked. */
export interface Listed {
  id: string;
  actions?: string[];
}

/** The summary a streamed list ends with. */
export interface ListDone {
  count: number;
  listed_by: Schemas["ListedBy"];
  policy_version: string;
  entities_at?: string | null;
}

/** Why a call failed: the sidecar refused the question (a 4xx, with its code and the field at
 * fault), could not answer (a 5xx), or could not be reached in time (`status` undefined). */
export class GatehouseError extends Error {
  constructor(
    readonly status: number | undefined,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly requestId?: string,
  ) {
    super(status === undefined ? `${code}: ${message}` : `${status} ${code}: ${message}`);
    this.name = "GatehouseError";
  }
}

export interface Options {
  /** How long a call may take before it fails with `timeout`; 2 000 ms by default. */
  timeoutMs?: number;
  /** The consistency every question asks with, unless it sets its own. */
  consistency?: Consistency;
  /** The admin token, for the sidecar's admin routes. */
  adminToken?: string;
}

export class Gatehouse {
  readonly base: string;
  readonly options: Options;

  constructor(base = "http://127.0.0.1:8180", options: Options = {}) {
    this.base = base.replace(/\/+$/, "");
    this.options = options;
  }

  /** The same client, asking every question with `consistency`. */
  withConsistency(consistency: Consistency): Gatehouse {
    return new Gatehouse(this.base, { ...this.options, consistency });
  }

  /** The same client, decided on the entity database as of `token` at least (an answer's
   * `entities_at`, or `position()` right after a write of the host's). */
  atLeast(token: string): Gatehouse {
    return this.withConsistency({ at_least: token });
  }

  /** `GET /v1/entities/position`: after a write of the host's, `position` is the token that
   * makes the next answers see it. */
  position(): Promise<Position> {
    return this.call<Position>("GET", "/v1/entities/position");
  }

  /** `GET /v1/status`: the policy set, the entity source and the caches (the admin token when
   * the sidecar requires one). */
  status(): Promise<Schemas["StatusBody"]> {
    return this.call<Schemas["StatusBody"]>("GET", "/v1/status");
  }

  /** `POST /v1/is_authorized`. */
  isAuthorized(question: Question): Promise<Decision> {
    return this.call<Decision>("POST", "/v1/is_authorized", this.consistent(question));
  }

  /** True on Allow; false on Deny and whenever no decision could be had (fail closed), with
   * the reason logged through `log`. */
  async may(
    question: Question,
    log: (message: string) => void = (m) => console.warn(m),
  ): Promise<boolean> {
    try {
      return (await this.isAuthorized(question)).decision === "Allow";
    } catch (error) {
      log(`gatehouse: ${error instanceof Error ? error.message : String(error)}; denying`);
      return false;
    }
  }

  /** `POST /v1/is_authorized/batch`: one result per question, in order. */
  async batch(requests: Question[], entities?: Schemas["Entity"][]): Promise<BatchResult[]> {
    const body: Schemas["BatchRequest"] = { requests };
    if (entities !== undefined) body.entities = entities;
    const answer = await this.call<Schemas["BatchBody"]>(
      "POST",
      "/v1/is_authorized/batch",
      this.consistent(body),
    );
    return answer.results;
  }

  /** `POST /v1/allowed_actions`: which of the actions (all that apply when none are named) the
   * principal may take on the resource: the buttons of a page in one call. */
  allowedActions(question: ActionsQuestion): Promise<AllowedActions> {
    return this.call<AllowedActions>("POST", "/v1/allowed_actions", this.consistent(question));
  }

  /** `POST /v1/plan`: the condition, for a host that runs the SQL itself. */
  plan(question: PlanQuestion): Promise<Plan> {
    return this.call<Plan>("POST", "/v1/plan", this.consistent(question));
  }

  /** `POST /v1/list`: one page of the ids of `resource_type` the principal may act on,
   * answered in the sidecar's entity database. */
  list(question: ListQuestion): Promise<ListPage> {
    return this.call<ListPage>("POST", "/v1/list", this.consistent(question));
  }

  /** `POST /v1/list/subjects`: one page of the principals that may act on the resource ("who
   * has access?"); with `actions`, `subjects` says which each may take. */
  listSubjects(question: SubjectsQuestion): Promise<ListPage> {
    return this.call<ListPage>("POST", "/v1/list/subjects", this.consistent(question));
  }

  /** Every id of `list`, page after page (pages of 1 000 unless the question sizes them).
   * Each later page is asked at least at the position the page before it was read at, so no
   * page sees the database older than the one before it. */
  listAll(question: ListQuestion): Promise<string[]> {
    return this.allPages((q) => this.list(q), question);
  }

  /** Every id of `listSubjects`, page after page. */
  listSubjectsAll(question: SubjectsQuestion): Promise<string[]> {
    return this.allPages((q) => this.listSubjects(q), question);
  }

  /** Every id of `list` in one streamed answer (`Accept: application/x-ndjson`), for exports:
   * yields each as it arrives and returns the summary. Throws when the stream ends without
   * its `done` line, so a cut-off list is never taken for a whole one. */
  stream(question: ListQuestion): AsyncGenerator<Listed, ListDone> {
    return this.streamed("/v1/list", question);
  }

  /** `listSubjects`, streamed. */
  streamSubjects(question: SubjectsQuestion): AsyncGenerator<Listed, ListDone> {
    return this.streamed("/v1/list/subjects", question);
  }

  private async allPages<Q extends ListQuestion | SubjectsQuestion>(
    ask: (question: Q) => Promise<ListPage>,
    question: Q,
  ): Promise<string[]> {
    const ids: string[] = [];
    let page = { size: question.page?.size ?? 1000, token: question.page?.token ?? null };
    let consistency = question.consistency ?? this.options.consistency;
    for (;;) {
      const answer = await ask({ ...question, page, ...(consistency ? { consistency } : {}) });
      ids.push(...answer.ids);
      if (answer.next_token == null) return ids;
      page = { ...page, token: answer.next_token };
      if (answer.entities_at != null) consistency = { at_least: answer.entities_at };
    }
  }

  private async *streamed(path: string, question: object): AsyncGenerator<Listed, ListDone> {
    const response = await this.send("POST", path, this.consistent(question), {
      accept: "application/x-ndjson",
    });
    if (response.body === null) throw new GatehouseError(response.status, "bad_answer", "no body");
    let buffered = "";
    const decoder = new TextDecoder();
    const lines = async function* (chunks: AsyncIterable<Uint8Array>) {
      for await (const chunk of chunks) {
        buffered += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, end);
          buffered = buffered.slice(end + 1);
          if (line.trim() !== "") yield JSON.parse(line) as Record<string, unknown>;
        }
      }
    };
    for await (const line of lines(response.body as unknown as AsyncIterable<Uint8Array>)) {
      if (line["done"] === true) return line as unknown as ListDone;
      if (line["error"] !== undefined) {
        const error = line["error"] as ErrorObject;
        throw new GatehouseError(response.status, error.code, error.message, error.field ?? undefined);
      }
      yield line as unknown as Listed;
    }
    throw new GatehouseError(response.status, "cut_off", "the list ended without its `done` line");
  }

  private consistent<T extends object>(body: T): T {
    const consistency = this.options.consistency;
    if (consistency === undefined || "consistency" in body) return body;
    return { ...body, consistency };
  }

  private async call<T>(method: string, path: string, body?: object): Promise<T> {
    const response = await this.send(method, path, body);
    return (await response.json()) as T;
  }

  private async send(
    method: string,
    path: string,
    body?: object,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    const url = this.base + path;
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.options.adminToken !== undefined) {
      headers["authorization"] = `Bearer ${this.options.adminToken}`;
    }
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 2000),
      });
    } catch (error) {
      const timedOut = error instanceof Error && error.name === "TimeoutError";
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
      throw new GatehouseError(
        undefined,
        timedOut ? "timeout" : "unreachable",
        `${url}: ${cause instanceof Error ? cause.message : String(cause)}`,
      );
    }
    if (response.ok) return response;
    const requestId = response.headers.get("x-request-id") ?? undefined;
    let error: Partial<ErrorObject> = {};
    try {
      error = ((await response.json()) as Schemas["ErrorBody"]).error;
    } catch {
      // Not gatehouse's error body (a proxy's page): the status alone.
    }
    throw new GatehouseError(
      response.status,
      error.code ?? "http_error",
      error.message ?? response.statusText,
      error.field ?? undefined,
      requestId,
    );
  }
}
