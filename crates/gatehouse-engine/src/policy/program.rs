//! The policies of each index entry compiled once into programs that
//! [`crate::decide::eval`] runs instead of Cedar's evaluator.
//!
//! Cedar's evaluator rebuilds each policy's condition on every evaluation (its scope and body
//! joined into a fresh expression), builds a set value for every set literal (`action in
//! [...]`, `[...].contains(...)`), and clones every value it reads with its source location.
//! For a question decided on a known slice that was most of the evaluation. A program is the
//! same condition (`ast::Policy::condition`, Cedar's own join of scope and body), read once into
//! a tree whose set literals of literals are kept as plain lists and whose nodes borrow what
//! they read.
//!
//! Only what the evaluator implements exactly is compiled: literals, the four variables,
//! `&&`, `||`, `!`, `if`, `==`, `<`, `<=`, `+`, `-`, `*`, negation, `isEmpty`, `in`,
//! `contains`, `containsAll`, `containsAny`, `.attr`, `has`, `like`, `is` and set literals.
//! A policy with anything else (extension functions, records built in the policy, tags,
//! slots, unknowns, a chain of `has`) leaves its whole entry without a program, and its
//! questions are decided by Cedar as before. Nor does a program ever produce an error: where
//! Cedar would report one (a missing entity or attribute, a type error, an overflow), the
//! evaluator gives up and the question goes to Cedar, which reports it with its own message.

use cedar_policy_core::ast::{self, BinaryOp, Effect, ExprKind, Literal, Pattern, UnaryOp, Var};

/// The policies of one index entry, compiled.
#[derive(Debug)]
pub struct Program {
    /// Every policy of the entry, in the entry's order.
    pub(crate) policies: Vec<Compiled>,
}

/// One policy: its id as text, its effect and its condition.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) id: String,
    pub(crate) permit: bool,
    pub(crate) condition: Node,
}

/// An expression the evaluator runs. Children are boxed: a program is built once per
/// snapshot and read many times.
#[derive(Debug)]
pub(crate) enum Node {
    Lit(Literal),
    /// A set literal whose elements are all literals, kept as a list (duplicates and all: no
    /// operation the evaluator implements depends on them).
    Lits(Vec<Literal>),
    /// A set literal with an element that is not a literal.
    Set(Vec<Node>),
    Var(Var),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    If(Box<Node>, Box<Node>, Box<Node>),
    Unary(UnaryOp, Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    GetAttr(Box<Node>, Box<str>),
    HasAttr(Box<Node>, Box<str>),
    Like(Box<Node>, Pattern),
    Is(Box<Node>, ast::EntityType),
}

/// Deeper expressions are left to Cedar, whose evaluator checks its stack as it goes.
const MAX_DEPTH: usize = 128;

impl Program {
    /// The entry's policies compiled, or `None` when one of them uses what the evaluator does
    /// not implement.
    pub fn compile<'a>(
        policies: impl IntoIterator<Item = &'a cedar_policy::Policy>,
    ) -> Option<Self> {
        let policies = policies
            .into_iter()
            .map(|policy| {
                // The id as Cedar's response prints it.
                let id = policy.id().to_string();
                let policy: &ast::Policy = policy.as_ref();
                Some(Compiled {
                    id,
                    permit: policy.effect() == Effect::Permit,
                    condition: node(&policy.condition(), 0)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { policies })
    }
}

fn boxed(expr: &ast::Expr, depth: usize) -> Option<Box<Node>> {
    node(expr, depth).map(Box::new)
}

fn node(expr: &ast::Expr, depth: usize) -> Option<Node> {
    if depth > MAX_DEPTH {
        return None;
    }
    let d = depth + 1;
    Some(match expr.expr_kind() {
        ExprKind::Lit(lit) => Node::Lit(lit.clone()),
        ExprKind::Var(var) => Node::Var(*var),
        ExprKind::If {
            test_expr,
            then_expr,
            else_expr,
        } => Node::If(
            boxed(test_expr, d)?,
            boxed(then_expr, d)?,
            boxed(else_expr, d)?,
        ),
        ExprKind::And { left, right } => Node::And(boxed(left, d)?, boxed(right, d)?),
        ExprKind::Or { left, right } => Node::Or(boxed(left, d)?, boxed(right, d)?),
        ExprKind::UnaryApp { op, arg } => Node::Unary(*op, boxed(arg, d)?),
        ExprKind::BinaryApp { op, arg1, arg2 } => match op {
            BinaryOp::Eq
            | BinaryOp::Less
            | BinaryOp::LessEq
            | BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::In
            | BinaryOp::Contains
            | BinaryOp::ContainsAll
            | BinaryOp::ContainsAny => Node::Binary(*op, boxed(arg1, d)?, boxed(arg2, d)?),
            BinaryOp::GetTag | BinaryOp::HasTag => return None,
        },
        ExprKind::GetAttr { expr, attr } => Node::GetAttr(boxed(expr, d)?, attr.as_str().into()),
        ExprKind::HasAttr { expr, attr } => Node::HasAttr(boxed(expr, d)?, attr.as_str().into()),
        ExprKind::Like { expr, pattern } => Node::Like(boxed(expr, d)?, pattern.clone()),
        ExprKind::Is { expr, entity_type } => Node::Is(boxed(expr, d)?, entity_type.clone()),
        ExprKind::Set(items) => {
            let literals: Option<Vec<Literal>> = items
                .iter()
                .map(|item| match item.expr_kind() {
                    ExprKind::Lit(lit) => Some(lit.clone()),
                    _ => None,
                })
                .collect();
            match literals {
                Some(literals) => Node::Lits(literals),
                None => Node::Set(
                    items
                        .iter()
                        .map(|item| node(item, d))
                        .collect::<Option<_>>()?,
                ),
            }
        }
        // Slots, unknowns, extension functions, record literals, `has a.b`, and whatever a
        // later Cedar adds: left to Cedar.
        _ => return None,
    })
}
