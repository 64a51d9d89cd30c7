//! `api = "whm"`: a root or reseller WHM credential acts for every account through WHM API 1
//! `uapi_cpanel` on the WHM port (2087), so one credential per server reaches all its accounts.

use super::ApiError;
use super::Cred;
use super::http::{Caller, HttpBackend, Route};

pub(super) struct ThroughWhm;

/// The WHM backend.
pub(super) type WhmBackend = HttpBackend<ThroughWhm>;

impl Route for ThroughWhm {
    /// Every account call goes through `uapi_cpanel` with the one WHM credential: cPanel
    /// recommends it precisely because it composes with WHM API 1 `batch`.
    const BATCHES: bool = true;

    fn account<'a>(
        user: &'a str,
        _own: Option<Cred<'a>>,
        host: Option<Cred<'a>>,
        whm_user: &'a str,
    ) -> Result<Caller<'a>, ApiError> {
        let cred =
            host.ok_or_else(|| ApiError::NoCredential("no WHM credential for this host".into()))?;
        Ok(Caller::WhmFor {
            whm_user,
            credential: cred.secret,
            auth: cred.auth,
            account: user,
        })
    }
}
