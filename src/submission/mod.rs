//! A message's fate once the session has read and screened it: handed to
//! the committer, which re-checks the sender's standing (`policy::admit`)
//! and decides from the content verdict and the sender's behaviour
//! (`fate::decide`, the rule this module hands it) whether it is queued, held, or held with the user
//! locked; then the outcome: the day's counters, the log line, the admin
//! notice of a hold or lock, and the answer the user's quarantine
//! response calls for. The session only turns the `Answer` into its reply.

pub mod fate;

use crate::app::{App, Stats};
use crate::policy::response::{self, Held};
use crate::scan::Class;
use crate::store::{AcceptError, Accepted, Refusal, Submission, queue_id};
use crate::users::QuarantineResponse;

/// What the client is told: code, enhanced status and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    pub status: &'static str,
    pub text: String,
}

impl Answer {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Answer {
        Answer {
            code,
            status,
            text: text.into(),
        }
    }
}

/// Hands a screened message to the committer and says what became of it.
/// `summary` words the content verdict (`smtp::screen::summary`).
pub async fn submit(app: &App, submission: Submission, summary: &str) -> Answer {
    let user = submission.user.clone();
    let ip = submission.client_ip.clone();
    let id = submission.id;
    let rcpts = submission.recipients.len();
    let size = submission.message.len();
    let class = submission.content.class;
    let answer = match app.committer.accept(submission, fate::decide).await {
        Ok(Accepted::Queued(id)) => {
            Stats::bump(&app.stats.accepted);
            tracing::info!(ip = %ip, user, id = %queue_id(id), recipients = rcpts, size, "message accepted");
            return Answer::new(250, "2.0.0", format!("Ok: queued as {}", queue_id(id)));
        }
        Ok(Accepted::Held(held)) => return self::held(app, &ip, &user, id, &held, class, summary),
        Err(AcceptError::NoUser) => Answer::new(550, "5.7.1", "User no longer exists"),
        Err(AcceptError::Policy(r)) => {
            let (code, status, text) = r.reply();
            Answer::new(code, status, text)
        }
        Err(AcceptError::Refused(r)) => store_refusal(r),
        Err(AcceptError::Store(e)) => {
            tracing::error!(error = %e, "queueing failed");
            Answer::new(451, "4.3.0", "Temporary local problem, try again later")
        }
    };
    app.note_refused();
    tracing::info!(ip = %ip, user, reply = %answer.text, "message refused");
    answer
}

/// Held (and perhaps the user locked): log, notify the admin, and
/// answer as the user's quarantine response says.
fn held(
    app: &App,
    ip: &str,
    user: &str,
    id: u64,
    held: &Held,
    class: Class,
    summary: &str,
) -> Answer {
    app.note_caught();
    let (admin, tz, response) = app.settings.read(|c| {
        let eff = app
            .store
            .user(user)
            .ok()
            .flatten()
            .map(|u| u.settings.resolve(&c.settings.defaults))
            .unwrap_or_else(|| c.settings.defaults.clone());
        (
            c.settings.admin_address.clone(),
            c.tz.clone(),
            eff.quarantine_response,
        )
    });
    tracing::warn!(ip = %ip, user, id = %queue_id(id), %class, fate = %held.fate, reasons = %response::summary(&held.reasons), "message caught");
    app.announce_held(&admin, user, held, &tz);
    quarantine_answer(response, class, summary, id)
}

/// The answer to held mail, per the user's quarantine response.
pub fn quarantine_answer(
    response: QuarantineResponse,
    class: Class,
    summary: &str,
    id: u64,
) -> Answer {
    match response {
        QuarantineResponse::Rejected if class == Class::Clean => Answer::new(
            550,
            "5.7.1",
            "Message held for review: unusual sending for this account",
        ),
        QuarantineResponse::Rejected => Answer::new(
            550,
            "5.7.1",
            format!("Message refused: {class} detected ({summary})"),
        ),
        QuarantineResponse::Accepted => {
            Answer::new(250, "2.0.0", format!("Ok: queued as {}", queue_id(id)))
        }
    }
}

/// No room under the disk reserve (452 4.3.1, RFC 3463), or a failed store.
pub fn store_refusal(r: Refusal) -> Answer {
    match r {
        Refusal::Full { .. } => Answer::new(452, "4.3.1", r.to_string()),
        Refusal::Failed(_) => Answer::new(451, "4.3.0", r.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_response_decides_the_answer() {
        let held = quarantine_answer(QuarantineResponse::Rejected, Class::Clean, "", 7);
        assert_eq!(
            (held.code, held.text.as_str()),
            (
                550,
                "Message held for review: unusual sending for this account"
            )
        );
        let spam = quarantine_answer(QuarantineResponse::Rejected, Class::Spam, "GTUBE", 7);
        assert_eq!(spam.code, 550);
        assert!(spam.text.starts_with("Message refused: "), "{}", spam.text);
        let quiet = quarantine_answer(QuarantineResponse::Accepted, Class::Malware, "x", 7);
        assert_eq!((quiet.code, quiet.status), (250, "2.0.0"));
        assert_eq!(quiet.text, format!("Ok: queued as {}", queue_id(7)));
    }
}
