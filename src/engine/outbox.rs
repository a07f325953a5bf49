//! Replies on their way out of the engine.
//!
//! A reply with a job's body (`RESERVED`, `FOUND`) names the body where the
//! store keeps it instead of carrying a copy: the server writes the bytes
//! from the store straight into the connection's output when it takes the
//! reply ([`Outbox::send`]). A copy used to cost a reserve an allocation, a
//! copy and a free, 5-8% of the server's time for reserve+delete.
//!
//! A name is good only while its body is in the store. So before a body
//! leaves it, the replies still waiting here take a copy of theirs
//! ([`Outbox::detach`]). The server takes the replies after every command,
//! so that only happens to callers that let replies pile up (tests).

use std::rc::Rc;

use super::bodies::{Bodies, BodyRef};
use super::ids::ConnId;
use crate::protocol::{self, BodyBytes};

/// A job's body in a reply still in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyBody {
    /// In the store, where the job keeps it.
    Stored(BodyRef),
    /// A copy, taken when the body left the store before its reply left the
    /// outbox.
    Copied(Rc<[u8]>),
}

/// A reply as the engine makes it.
pub type Reply = protocol::Reply<ReplyBody>;

/// The reply with its body lent from `bodies`, for as long as it is
/// borrowed: to be written now.
#[inline]
pub fn lend(reply: Reply, bodies: &Bodies) -> protocol::Reply<BodyBytes<'_>> {
    reply.map_body(|body| match body {
        ReplyBody::Stored(stored) => bodies.lend(stored),
        ReplyBody::Copied(copy) => BodyBytes::Shared(copy),
    })
}

#[derive(Debug, Default)]
pub struct Outbox {
    replies: Vec<(ConnId, Reply)>,
}

impl Outbox {
    pub fn push(&mut self, conn: ConnId, reply: Reply) {
        self.replies.push((conn, reply));
    }

    /// Gives every waiting reply its own copy of its body: call before a
    /// body leaves `bodies`.
    pub fn detach(&mut self, bodies: &Bodies) {
        for (_, reply) in &mut self.replies {
            if let Reply::Reserved { body, .. } | Reply::Found { body, .. } = reply
                && let ReplyBody::Stored(stored) = *body
            {
                *body = ReplyBody::Copied(bodies.share(stored));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }

    /// The replies, in the order they were made, with their bodies lent
    /// from `bodies` for as long as the replies are borrowed.
    pub fn send<'a>(
        &'a mut self,
        bodies: &'a Bodies,
    ) -> impl Iterator<Item = (ConnId, protocol::Reply<BodyBytes<'a>>)> + 'a {
        self.replies.drain(..).map(move |(conn, reply)| (conn, lend(reply, bodies)))
    }

    /// The replies, in the order they were made, each with its own copy of
    /// its body (for callers that keep them).
    pub fn take<'a>(&'a mut self, bodies: &'a Bodies) -> impl Iterator<Item = (ConnId, protocol::Reply)> + 'a {
        self.replies.drain(..).map(move |(conn, reply)| {
            let reply = reply.map_body(|body| match body {
                ReplyBody::Stored(stored) => bodies.share(stored),
                ReplyBody::Copied(copy) => copy,
            });
            (conn, reply)
        })
    }
}
