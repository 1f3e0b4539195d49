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
    Ok(match condition {
        Condition::True => true,
        Condition::False => false,
        Condition::And { args } => {
            for arg in args {
                if !holds(arg, request, entities)? {
                    return Ok(false);
                }
            }
            true
        }
        Condition::Or { args } => {
            for arg in args {
                if holds(arg, request, entities)? {
                    return Ok(true);
                }
            }
            false
        }
        Condition::Not { arg } => !holds(arg, request, entities)?,
        leaf => {
            let text = leaf.leaf_expression().unwrap_or_default();
            let expression = Expression::from_str(&text)
                .map_err(|e| format!("the leaf `{text}` is not Cedar: {e}"))?;
            matches!(
                cedar_policy::eval_expression(request, entities, &expression),
                Ok(EvalResult::Bool(true))
            )
        }
    })
}
