//! Where a session stands: greeted or not (EHLO/HELO), logged in or not
//! (AUTH, or the client's address), inside a mail transaction or not
//! (MAIL until DATA's end or RSET). Each command's `check_*` reads it;
//! EHLO/HELO, AUTH, MAIL, RCPT, RSET and DATA move it. STARTTLS starts a
//! fresh session, so a fresh `State`.

use super::Transaction;

pub(super) struct State {
    /// Set by EHLO/HELO.
    pub(super) greeting: Option<Greeting>,
    /// The sending user: by AUTH, or by the client's address.
    pub(super) login: Option<Login>,
    /// The mail transaction under way, from MAIL on.
    pub(super) tx: Option<Transaction>,
}

pub(super) struct Greeting {
    /// The name the client gave.
    pub(super) host: String,
    /// EHLO rather than HELO: extensions and enhanced status codes.
    pub(super) esmtp: bool,
}

pub(super) struct Login {
    pub(super) user: String,
    /// By AUTH rather than by address (for the Received protocol name).
    pub(super) by_password: bool,
}

impl State {
    /// A session's start: logged in already if its address is a user's.
    pub(super) fn new(ip_user: Option<String>) -> State {
        State {
            greeting: None,
            login: ip_user.map(|user| Login {
                user,
                by_password: false,
            }),
            tx: None,
        }
    }

    pub(super) fn helo(&self) -> Option<&str> {
        self.greeting.as_ref().map(|g| g.host.as_str())
    }

    pub(super) fn esmtp(&self) -> bool {
        self.greeting.as_ref().is_some_and(|g| g.esmtp)
    }

    pub(super) fn user(&self) -> Option<&str> {
        self.login.as_ref().map(|l| l.user.as_str())
    }

    pub(super) fn by_password(&self) -> bool {
        self.login.as_ref().is_some_and(|l| l.by_password)
    }
}
