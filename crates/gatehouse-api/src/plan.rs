//! A query plan as the sidecar answers `POST /v1/plan`: which resources of a type a principal
//! may act on, as a [`Condition`] a host turns into a database filter, and as residual
//! policies in Cedar's text.

use serde::{Deserialize, Serialize};

use crate::condition::Condition;

/// What a plan says of every resource of the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// Every resource is allowed.
    AlwaysAllowed,
    /// No resource is allowed.
    AlwaysDenied,
    /// Allowed where the condition (or the residuals) hold.
    Conditional,
}

/// A query plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    /// Always, never, or where the condition holds.
    pub kind: PlanKind,
    /// Whether `condition` expresses the plan exactly.
    pub filterable: bool,
    /// The condition over the resource's attributes; `None` when not filterable.
    pub condition: Option<Condition>,
    /// Why the plan is not filterable: the policy and the residual construct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// The residual policies that can still hold, as Cedar text, sorted by id.
    pub residuals: Vec<String>,
    /// For `always_allowed` and `always_denied`: the deciding policy ids.
    pub reasons: Vec<String>,
    /// Errors that make every decision a Deny, each naming its policy.
    pub errors: Vec<String>,
    /// The principal, when it is neither sent nor stored: the plan was made for a principal
    /// with no attributes and no groups, as a decision's `missing` says.
    #[serde(default)]
    pub missing: Vec<String>,
    /// The attribute paths the residuals read through a reference (`["organization",
    /// "admins"]` reads the project's organization), the condition's or not. Where such a
    /// reference names no entity (a row without a foreign key to hold it), Cedar errs and
    /// the decision is a Deny, while a database reads the missing row as `NULL`: a host
    /// without foreign keys decides those rows one by one (gatehouse's lists do).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub reads: Vec<Vec<String>>,
}

impl Plan {
    /// What the plan costs in memory: about twice its JSON (its strings, and the tree that
    /// holds them), counted without writing it out.
    pub fn weight(&self) -> u64 {
        struct Count(u64);
        impl std::io::Write for Count {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len() as u64;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut count = Count(0);
        let _ = serde_json::to_writer(&mut count, self);
        2 * count.0 + std::mem::size_of::<Self>() as u64
    }
}
