//! A plan's condition evaluated by Cedar on one concrete resource: the reference every
//! translation of the condition (a host's SQL, `gatehouse-sql`) is tested against.

use std::str::FromStr;

use cedar_policy::{Entities, EvalResult, Expression, Request};

use super::condition::Condition;

/// Whether the condition holds for the request's resource, read from `entities`: each
/// leaf is evaluated by Cedar as the expression [`Condition::leaf_expression`] writes
/// (an error, such as an absent attribute, makes it false), and `and`, `or`, `not`
/// combine them. The reference a database filter is tested against.
pub fn holds(
    condition: &Condition,
    request: &Request,
    entities: &Entities,
) -> Result<bool, String> {
    holds_on("resource", condition, request, entities)
}

/// [`holds`] for a condition over `variable`: `resource` (a plan), or `principal` (a
/// subjects plan, whose condition reads the principal).
pub fn holds_on(
    variable: &str,
    condition: &Condition,
    request: &Request,
    entities: &Entities,
) -> Result<bool, String> {
    let holds = |c: &Condition| holds_on(variable, c, request, entities);
    Ok(match condition {
        Condition::True => true,
        Condition::False => false,
        Condition::And { args } => {
            for arg in args {
                if !holds(arg)? {
                    return Ok(false);
                }
            }
            true
        }
        Condition::Or { args } => {
            for arg in args {
                if holds(arg)? {
                    return Ok(true);
                }
            }
            false
        }
        Condition::Not { arg } => !holds(arg)?,
        leaf => {
            let text = leaf.leaf_expression_over(variable).unwrap_or_default();
            let expression = Expression::from_str(&text)
                .map_err(|e| format!("the leaf `{text}` is not Cedar: {e}"))?;
            matches!(
                cedar_policy::eval_expression(request, entities, &expression),
                Ok(EvalResult::Bool(true))
            )
        }
    })
}
