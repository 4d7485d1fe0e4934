//! [`NatsAccess`]: how a process authenticates to NATS (user and password, or a credentials
//! file) and whether it requires TLS (a PEM CA file: TLS required, that CA trusted). Shared by
//! the read model and the node's relay. The password is never logged (`Debug` redacts it).

use anyhow::Context as _;
use std::path::PathBuf;

/// NATS credentials and TLS settings; all optional (the default is an anonymous, plain
/// connection, as the throw-away test servers allow).
#[derive(Clone, Default)]
pub struct NatsAccess {
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password of `user`.
    pub password: Option<String>,
    /// Credentials file (JWT + NKey seed), instead of user and password.
    pub creds_file: Option<PathBuf>,
    /// CA certificate (PEM) of the server: when set, TLS is required.
    pub tls_ca: Option<PathBuf>,
}

impl std::fmt::Debug for NatsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl NatsAccess {
    /// Credentials and TLS from flag values, validated (shared by the node's and the read
    /// model's flags, which differ only in their environment names).
    pub fn from_flags(
        user: Option<String>,
        password: Option<String>,
        creds_file: Option<std::path::PathBuf>,
        tls_ca: Option<std::path::PathBuf>,
    ) -> anyhow::Result<Self> {
        let a = Self {
            user,
            password,
            creds_file,
            tls_ca,
        };
        a.validate()?;
        Ok(a)
    }

    /// Refuses contradictory or incomplete settings.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.user.is_some() == self.password.is_some(),
            "--nats-user and --nats-password go together"
        );
        anyhow::ensure!(
            !(self.user.is_some() && self.creds_file.is_some()),
            "give either --nats-user/--nats-password or --nats-creds, not both"
        );
        if let Some(ca) = &self.tls_ca {
            anyhow::ensure!(ca.is_file(), "--nats-tls-ca {}: no such file", ca.display());
        }
        Ok(())
    }

    /// Connect options carrying these credentials and TLS settings, to refine further.
    pub async fn options(&self) -> anyhow::Result<async_nats::ConnectOptions> {
        let mut o = match &self.creds_file {
            Some(f) => async_nats::ConnectOptions::with_credentials_file(f)
                .await
                .with_context(|| format!("read NATS credentials file {}", f.display()))?,
            None => async_nats::ConnectOptions::new(),
        };
        if let (Some(u), Some(p)) = (&self.user, &self.password) {
            o = o.user_and_password(u.clone(), p.clone());
        }
        if let Some(ca) = &self.tls_ca {
            o = o.require_tls(true).add_root_certificates(ca.clone());
        }
        Ok(o)
    }

    /// One line for logs: who connects and whether TLS is required, never the password.
    pub fn describe(&self) -> String {
        let who = match (&self.user, &self.creds_file) {
            (Some(u), _) => format!("user={u} password=<redacted>"),
            (None, Some(f)) => format!("creds_file={}", f.display()),
            (None, None) => "anonymous".into(),
        };
        match &self.tls_ca {
            Some(ca) => format!("{who} tls_ca={}", ca.display()),
            None => format!("{who} tls=off"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NatsAccess;

    #[test]
    fn never_shows_the_password() {
        let a = NatsAccess {
            user: Some("u".into()),
            password: Some("hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{a:?}").contains("hunter2"));
        assert!(a.validate().is_ok());
        let half = NatsAccess {
            user: Some("u".into()),
            ..Default::default()
        };
        assert!(half.validate().is_err());
    }
}
