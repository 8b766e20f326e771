//! Notices to the admin address: a user was locked or unlocked. They are
//! queued like any message, from the null sender (so a failed notice never
//! bounces), and delivered by the delivery side.

use jiff::Timestamp;

use crate::store::{QueueEntry, Recipient, Store, StoreError};

/// Queues a notice to `admin` under queue id `id`.
pub fn queue_notice(
    store: &Store,
    id: u64,
    hostname: &str,
    admin: &str,
    subject: &str,
    text: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let body = format!(
        "From: Outguard <postmaster@{hostname}>\r\nTo: <{admin}>\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <notice-{id:016x}@{hostname}>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n",
        subject = clean(subject),
        date = now.strftime("%a, %d %b %Y %H:%M:%S +0000"),
        text = text.replace('\n', "\r\n"),
    );
    let entry = QueueEntry {
        id,
        user: String::new(),
        sender: String::new(),
        recipients: vec![Recipient::new(admin.to_string())],
        size: body.len() as u64,
        received: now,
        client_ip: String::new(),
        helo: String::new(),
        next_attempt: Some(now),
        delay_warned: false,
        dsn: Default::default(),
        smtputf8: false,
    };
    store.enqueue(&entry, body.as_bytes())
}
