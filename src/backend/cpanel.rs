//! `api = "cpanel"`: each account's own credential (token or password) straight to UAPI
//! `/execute/Tokens/...` on the cPanel port (2083), for fleets that hold no WHM credential.
//! The host's credential is the default for accounts that name none.

use super::ApiError;
use super::Cred;
use super::http::{Caller, HttpBackend, Route};

pub(super) struct AsAccount;

/// The cPanel backend.
pub(super) type CpanelBackend = HttpBackend<AsAccount>;

impl Route for AsAccount {
    fn account<'a>(
        user: &'a str,
        own: Option<Cred<'a>>,
        host: Option<Cred<'a>>,
        _whm_user: &'a str,
    ) -> Result<Caller<'a>, ApiError> {
        let cred = own
            .or(host)
            .ok_or_else(|| ApiError::NoCredential("no credential for this account".into()))?;
        Ok(Caller::Account {
            user,
            credential: cred.secret,
            auth: cred.auth,
        })
    }
}
