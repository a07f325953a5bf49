//! Hostile and malformed input against the real binary, spoken as raw bytes.
//!
//! Every case here must end with the server still serving: no panic, no
//! unbounded memory, no lost job. Where the reply is beanstalkd-compatible the
//! same body also runs against the reference server (`<case>::beanstalkd`,
//! skipped locally when it is not installed), so each expectation is checked
//! against beanstalkd 1.12 itself. Where sprout departs on purpose, the body
//! branches on `Binary::is_sprout` and says why.

mod support;

use std::io::Write;
use std::thread;
use std::time::Duration;

use support::{Binary, Client, Rng, on_both, procfs, put_command, show, wait_until};

const MB: u64 = 1024 * 1024;

/// `delete<spaces>999\r\n` padded with spaces to exactly `len` bytes; a valid
/// command (→ NOT_FOUND) if the server accepted lines that long.
fn delete_line(len: usize) -> Vec<u8> {
    let mut line = b"delete".to_vec();
    line.resize(len - 5, b' ');
    line.extend_from_slice(b"999\r\n");
    assert_eq!(line.len(), len);
    line
}

// ---------------------------------------------------------------------------
// line length cap

/// 224 bytes including CRLF is the longest command line; anything longer is
/// answered BAD_FORMAT once, and the connection goes on with the next line.
///
/// Departure: beanstalkd loses the CR of a line whose length is 1 mod 224
/// (225, 449, ...) when it discards its full 224-byte buffer, so it then
/// swallows the *next* command as part of the long line. sprout answers the
/// next command.
fn line_length_cap(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    for len in [200, 223, 224] {
        c.exchange(delete_line(len), b"NOT_FOUND\r\n");
    }
    for len in [225, 226, 300, 449, 1000, 100_000, 1_000_000] {
        let mut bytes = delete_line(len);
        bytes.extend_from_slice(b"list-tube-used\r\nuse after\r\n");
        c.send(&bytes);
        c.expect_reply(b"BAD_FORMAT\r\n");
        let beanstalkd_swallows_next = !bin.is_sprout() && len % 224 == 1;
        if !beanstalkd_swallows_next {
            c.expect_reply(b"USING default\r\n");
        }
        c.expect_reply(b"USING after\r\n");
        c.exchange(b"use default\r\n", b"USING default\r\n");
    }
    // The CR and the LF of an over-long line arrive in separate segments.
    c.send([b'x'; 500]);
    c.send(b"\r");
    thread::sleep(Duration::from_millis(50));
    c.send(b"\nlist-tube-used\r\n");
    c.expect_reply(b"BAD_FORMAT\r\n");
    c.expect_reply(b"USING default\r\n");
    // And a 225-byte line that arrives one part at a time, CRLF last.
    // (beanstalkd swallows the next command here too.)
    let line = delete_line(225);
    c.send(&line[..223]);
    thread::sleep(Duration::from_millis(50));
    c.send(&line[223..]);
    c.send(b"use again\r\nlist-tube-used\r\n");
    c.expect_reply(b"BAD_FORMAT\r\n");
    if !bin.is_sprout() {
        c.expect_reply(b"USING default\r\n");
    } else {
        c.expect_reply(b"USING again\r\n");
        c.expect_reply(b"USING again\r\n");
    }
}
on_both!(line_length_cap);

/// 64 MiB without a line end, then CRLF: one BAD_FORMAT, and the server
/// discards as it reads instead of buffering the line.
fn very_long_line_is_not_buffered(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    let chunk = vec![b'a'; MB as usize];
    for _ in 0..64 {
        c.send(&chunk);
    }
    c.send(b"\r\nlist-tube-used\r\n");
    c.expect_reply(b"BAD_FORMAT\r\n");
    c.expect_reply(b"USING default\r\n");
    let peak = procfs::peak_resident_kb(s.pid());
    eprintln!("{}: peak RSS after a 64 MiB line: {peak} kB", s.name);
    assert!(peak < 32 * 1024, "{} peak RSS {peak} kB after a 64 MiB line", s.name);
}
on_both!(very_long_line_is_not_buffered);

// ---------------------------------------------------------------------------
// garbage

/// Binary garbage gets exactly beanstalkd's replies: a NUL anywhere in the
/// line → BAD_FORMAT, otherwise an unknown command → UNKNOWN_COMMAND; the
/// connection stays usable throughout.
fn garbage_bytes(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    let fixed: &[(&[u8], &[u8])] = &[
        (b"\x00\r\n", b"BAD_FORMAT\r\n"),
        (b"\xff\xfe\xfd\x80\r\n", b"UNKNOWN_COMMAND\r\n"),
        (b"put \x00 0 1 1\r\n", b"BAD_FORMAT\r\n"),
        (b"list-tube-used\x00\r\n", b"BAD_FORMAT\r\n"),
        (b"\x00list-tube-used\r\n", b"BAD_FORMAT\r\n"),
        (b"stats\xff\r\n", b"BAD_FORMAT\r\n"),
        (b"reserve\x01\r\n", b"BAD_FORMAT\r\n"),
        (b"PUT 0 0 1 1\r\n", b"UNKNOWN_COMMAND\r\n"),
        (b"QUIT\r\n", b"UNKNOWN_COMMAND\r\n"),
        (b"\r\n", b"UNKNOWN_COMMAND\r\n"),
        (b" \r\n", b"UNKNOWN_COMMAND\r\n"),
        (b"\t\r\n", b"UNKNOWN_COMMAND\r\n"),
        (b" list-tube-used\r\n", b"UNKNOWN_COMMAND\r\n"),
        (b"\nlist-tube-used\r\n", b"UNKNOWN_COMMAND\r\n"),
        (b"list-tube-used\nlist-tube-used\r\n", b"BAD_FORMAT\r\n"),
        (b"use \xc3\xa9\r\n", b"BAD_FORMAT\r\n"),
        (b"use a\tb\r\n", b"BAD_FORMAT\r\n"),
        (b"use a\x00b\r\n", b"BAD_FORMAT\r\n"),
        (b"delete 1\x00\r\n", b"BAD_FORMAT\r\n"),
        (b"delete\r\n", b"UNKNOWN_COMMAND\r\n"),
        (b"delete \r\n", b"BAD_FORMAT\r\n"),
        (b"peek-ready\xff\r\n", b"BAD_FORMAT\r\n"),
        (b"\x7f\x1b[A\r\n", b"UNKNOWN_COMMAND\r\n"),
        (b"GET / HTTP/1.1\r\n", b"UNKNOWN_COMMAND\r\n"),
    ];
    for (input, reply) in fixed {
        c.exchange(input, reply);
    }

    // 400 random lines, pipelined in one write: random bytes other than CR
    // and LF, starting with a byte no command starts with; a third of them
    // carry a NUL somewhere.
    let mut rng = Rng(0x5eed_0fba_d1d0);
    let mut input = Vec::new();
    let mut replies = Vec::new();
    for i in 0..400 {
        let len = 1 + rng.below(180) as usize;
        let mut line: Vec<u8> = (0..len)
            .map(|_| {
                loop {
                    let b = rng.below(256) as u8;
                    if b != b'\r' && b != b'\n' {
                        break b;
                    }
                }
            })
            .collect();
        line[0] = 0x80 | rng.below(128) as u8;
        let has_nul = i % 3 == 0 || line.contains(&0);
        if i % 3 == 0 {
            let at = rng.below(len as u64) as usize;
            line[at] = 0;
        }
        input.extend_from_slice(&line);
        input.extend_from_slice(b"\r\n");
        replies.push(if has_nul { &b"BAD_FORMAT\r\n"[..] } else { &b"UNKNOWN_COMMAND\r\n"[..] });
    }
    input.extend_from_slice(b"list-tube-used\r\n");
    replies.push(b"USING default\r\n");
    c.send(&input);
    for want in replies {
        c.expect_reply(want);
    }
    // Nothing above created a job or a tube.
    assert_eq!(c.stat("total-jobs"), "0");
    assert_eq!(c.stat("current-tubes"), "1");
}
on_both!(garbage_bytes);

// ---------------------------------------------------------------------------
// fragmentation and pipelining

/// Writes `bytes` one byte per segment (TCP_NODELAY is on, and a short pause
/// between writes makes each byte arrive on its own).
fn send_bytewise(c: &mut Client, bytes: &[u8]) {
    for b in bytes {
        c.send([*b]);
        thread::sleep(Duration::from_micros(500));
    }
}

fn one_byte_writes(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    send_bytewise(&mut c, b"use slow\r\n");
    c.expect_reply(b"USING slow\r\n");
    // A put whose header and body (which itself contains CRLF) trickle in.
    send_bytewise(&mut c, b"put 7 0 60 12\r\nhello\r\nworld\r\n");
    c.expect_reply(b"INSERTED 1\r\n");
    send_bytewise(&mut c, b"watch slow\r\n");
    c.expect_reply(b"WATCHING 2\r\n");
    send_bytewise(&mut c, b"reserve\r\n");
    c.expect_reply(b"RESERVED 1 12\r\nhello\r\nworld\r\n");
    send_bytewise(&mut c, b"stats-job 1\r\n");
    let reply = c.read_reply();
    assert!(reply.starts_with(b"OK "), "{}", show(&reply));
    assert!(show(&reply).contains("state: reserved"), "{}", show(&reply));
    send_bytewise(&mut c, b"delete 1\r\n");
    c.expect_reply(b"DELETED\r\n");
    // Two commands whose boundary falls inside one write, bytewise too.
    send_bytewise(&mut c, b"list-tube-used\r\nlist-tubes-watched\r\n");
    c.expect_reply(b"USING slow\r\n");
    let yaml = "---\n- default\n- slow\n";
    c.expect_reply(format!("OK {}\r\n{yaml}\r\n", yaml.len()).as_bytes());
}
on_both!(one_byte_writes);

/// 1,000 puts in one write, then 1,000 reserve+delete pairs in one write:
/// every reply is correct and in order.
fn pipelined_thousand(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    const N: usize = 1000;
    let body = |i: usize| format!("job-{i}-{}", "x".repeat(i % 50));
    let mut puts = Vec::new();
    for i in 1..=N {
        let b = body(i);
        puts.extend_from_slice(format!("put 100 0 60 {}\r\n{b}\r\n", b.len()).as_bytes());
    }
    // Written from another thread, so neither side can block the other
    // whatever the socket buffer sizes are.
    let mut w = c.writer();
    let writer = thread::spawn(move || w.write_all(&puts).unwrap());
    for i in 1..=N {
        c.expect_reply(format!("INSERTED {i}\r\n").as_bytes());
    }
    writer.join().unwrap();

    let mut work = Vec::new();
    for i in 1..=N {
        work.extend_from_slice(format!("reserve\r\ndelete {i}\r\n").as_bytes());
    }
    let mut w = c.writer();
    let writer = thread::spawn(move || w.write_all(&work).unwrap());
    for i in 1..=N {
        let b = body(i);
        c.expect_reply(format!("RESERVED {i} {}\r\n{b}\r\n", b.len()).as_bytes());
        c.expect_reply(b"DELETED\r\n");
    }
    writer.join().unwrap();
    assert_eq!(c.stat("current-jobs-ready"), "0");
    assert_eq!(c.stat("total-jobs"), N.to_string());
    assert_eq!(c.stat("cmd-delete"), N.to_string());
}
on_both!(pipelined_thousand);

// ---------------------------------------------------------------------------
// bodies

/// A body over `-z` is skipped as it streams: JOB_TOO_BIG comes only after
/// the last byte and its CRLF, nothing in it is taken as a command, the
/// server's memory stays far below the body size, and the connection goes on.
fn oversized_body_is_streamed_away(bin: &Binary) {
    let s = bin.server().args(["-z", "1000"]).start();
    let mut c = s.connect();
    let mut put = b"put 0 0 60 1001\r\n".to_vec();
    put.extend_from_slice(&[b'b'; 1001]);
    put.extend_from_slice(b"\r\n");
    c.exchange(&put, b"JOB_TOO_BIG\r\n");
    let mut put = b"put 0 0 60 1000\r\n".to_vec();
    put.extend_from_slice(&[b'k'; 1000]);
    put.extend_from_slice(b"\r\n");
    c.exchange(&put, b"INSERTED 1\r\n");

    // 200,000,000 bytes of text that would delete job 1 if it were parsed.
    const SIZE: usize = 200_000_000;
    c.send(format!("put 0 0 60 {SIZE}\r\n").as_bytes());
    let chunk = b"delete 1\r\n".repeat(100_000);
    assert_eq!(SIZE % chunk.len(), 0);
    for _ in 0..SIZE / chunk.len() {
        c.send(&chunk);
    }
    c.send(b"\r");
    assert!(c.is_silent_for(Duration::from_millis(300)), "{} answered before the body's last byte", s.name);
    c.send(b"\nlist-tube-used\r\n");
    c.expect_reply(b"JOB_TOO_BIG\r\n");
    c.expect_reply(b"USING default\r\n");
    let peak = procfs::peak_resident_kb(s.pid());
    eprintln!("{}: peak RSS after skipping a 200 MB body: {peak} kB", s.name);
    assert!(peak < 64 * 1024, "{} peak RSS {peak} kB while skipping a 200 MB body", s.name);

    // Job 1 is intact, and the next put works.
    let mut found = b"FOUND 1 1000\r\n".to_vec();
    found.extend_from_slice(&[b'k'; 1000]);
    found.extend_from_slice(b"\r\n");
    c.exchange(b"peek 1\r\n", &found);
    c.exchange(b"put 0 0 60 3\r\nabc\r\n", b"INSERTED 2\r\n");
    assert_eq!(c.stat("current-jobs-ready"), "2");
}
on_both!(oversized_body_is_streamed_away);

/// A body must be followed by exactly CRLF; otherwise EXPECTED_CRLF, the job
/// is dropped (its id is used up), and parsing resumes right after the
/// `<bytes>+2` bytes that were consumed.
fn body_framing(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    c.exchange(b"put 0 0 60 1\r\nx\r\n", b"INSERTED 1\r\n");
    // Two bytes of body for a declared one: "xy\r" is consumed, the "\n" is
    // left over and glued to the front of the next line.
    c.exchange(b"put 0 0 60 1\r\nxy\r\n", b"EXPECTED_CRLF\r\n");
    c.send(b"put 0 0 60 1\r\nz\r\n");
    c.expect_reply(b"UNKNOWN_COMMAND\r\n"); // "\nput 0 0 60 1"
    c.expect_reply(b"UNKNOWN_COMMAND\r\n"); // "z"
    c.exchange(b"put 0 0 60 1\r\nw\r\n", b"INSERTED 3\r\n");

    // Bodies are opaque bytes: CR, LF and CRLF inside them are data.
    c.send(b"put 0 0 60 2\r\nx\r");
    assert!(c.is_silent_for(Duration::from_millis(200)), "{} answered a put before its body", s.name);
    c.exchange(b"\r\n", b"INSERTED 4\r\n");
    c.exchange(b"peek 4\r\n", b"FOUND 4 2\r\nx\r\r\n");
    c.exchange(b"put 0 0 60 4\r\n\r\n\r\n\r\n", b"INSERTED 5\r\n");
    c.exchange(b"peek 5\r\n", b"FOUND 5 4\r\n\r\n\r\n\r\n");
    c.exchange(b"put 0 0 60 3\r\n\x00\xff\n\r\n", b"INSERTED 6\r\n");
    c.exchange(b"peek 6\r\n", b"FOUND 6 3\r\n\x00\xff\n\r\n");
    c.exchange(b"put 0 0 60 0\r\n\r\n", b"INSERTED 7\r\n");
    c.exchange(b"peek 7\r\n", b"FOUND 7 0\r\n\r\n");

    // Wrong trailers, each consuming exactly <bytes>+2 bytes.
    c.exchange(b"put 0 0 60 0\r\nab", b"EXPECTED_CRLF\r\n");
    c.exchange(b"put 0 0 60 3\r\nabc\n\n", b"EXPECTED_CRLF\r\n");
    c.exchange(b"put 0 0 60 3\r\nabc\r\r", b"EXPECTED_CRLF\r\n");
    c.exchange(b"put 0 0 60 3\r\nabc\n\r", b"EXPECTED_CRLF\r\n");
    c.exchange(b"list-tube-used\r\n", b"USING default\r\n");
    c.exchange(b"put 0 0 60 1\r\nv\r\n", b"INSERTED 12\r\n");

    assert_eq!(c.stat("current-jobs-ready"), "7");
    assert_eq!(c.stat("total-jobs"), "7");
    assert_eq!(c.stat("cmd-put"), "12");
}
on_both!(body_framing);

/// Large bodies, pipelined, in writes cut at every kind of place (in a
/// header, a body, a CRLF, between commands; pieces of 1 byte to 100 kB),
/// one of them without its CRLF: every job comes back intact, in order.
fn large_bodies_in_pieces(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    let sizes = [65_535, 1025, 2048, 40_000, 0, 65_535, 3, 60_001];
    let body = |i: usize, len: usize| -> Vec<u8> { (0..len).map(|k| (k * 7 + i * 13) as u8).collect() };
    let mut input = Vec::new();
    let mut want = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        input.extend_from_slice(format!("put 0 0 60 {len}\r\n").as_bytes());
        input.extend_from_slice(&body(i, len));
        input.extend_from_slice(if i == 5 { b"\r\r" } else { b"\r\n" });
        let reply = if i == 5 { "EXPECTED_CRLF\r\n".to_string() } else { format!("INSERTED {}\r\n", i + 1) };
        want.extend_from_slice(reply.as_bytes());
    }
    for (i, &len) in sizes.iter().enumerate().filter(|(i, _)| *i != 5) {
        input.extend_from_slice(b"reserve\r\n");
        want.extend_from_slice(format!("RESERVED {} {len}\r\n", i + 1).as_bytes());
        want.extend_from_slice(&body(i, len));
        want.extend_from_slice(b"\r\n");
    }
    let mut w = c.writer();
    let writer = thread::spawn(move || {
        let cuts = [1, 13, 65_536, 2, 100_000, 7, 4096, 30_000, 1];
        let mut rest = &input[..];
        for cut in cuts.iter().cycle() {
            let (piece, tail) = rest.split_at((*cut).min(rest.len()));
            w.write_all(piece).unwrap();
            rest = tail;
            if rest.is_empty() {
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
    });
    let got = c.read_bytes(want.len());
    writer.join().unwrap();
    let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
    let near = &got[same.saturating_sub(20)..(same + 40).min(got.len())];
    assert!(got == want, "{}: replies differ from byte {same}: {}", s.name, show(near));
}
on_both!(large_bodies_in_pieces);

/// After a large put, sprout aims its next read at a body of the same
/// shape. Whatever comes instead (a put of another size with a line of the
/// same length, other commands, a put in pieces, a body without its CRLF),
/// the answers are the same as beanstalkd's.
fn puts_of_the_last_shape_and_others(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    let body = |seed: usize, len: usize| -> Vec<u8> { (0..len).map(|k| (k * 3 + seed) as u8).collect() };
    let put = |seed: usize, len: usize, trailer: &[u8]| -> Vec<u8> {
        let mut v = format!("put 0 0 60 {len}\r\n").into_bytes();
        v.extend_from_slice(&body(seed, len));
        v.extend_from_slice(trailer);
        v
    };
    let pause = || thread::sleep(Duration::from_millis(20));
    let mut kept = Vec::new();
    for (id, len) in [(1, 30_000), (2, 30_000), (3, 30_001), (4, 30_001)] {
        c.exchange(put(id, len, b"\r\n"), format!("INSERTED {id}\r\n").as_bytes());
        kept.push((id, len));
        pause();
    }
    // Other commands, longer than a put line, where a put was expected.
    let mut peek = b"stats-tube default\r\npeek 1\r\n".to_vec();
    peek.extend_from_slice(&put(5, 30_001, b"\r\n"));
    c.send(&peek);
    let stats = c.read_reply();
    assert!(stats.starts_with(b"OK "), "{}", show(&stats));
    let mut found = b"FOUND 1 30000\r\n".to_vec();
    found.extend_from_slice(&body(1, 30_000));
    found.extend_from_slice(b"\r\n");
    c.expect_reply(&found);
    c.expect_reply(b"INSERTED 5\r\n");
    kept.push((5, 30_001));
    pause();
    // A body without its CRLF, in a put of the expected shape.
    c.exchange(put(6, 30_001, b"\r\r"), b"EXPECTED_CRLF\r\n");
    pause();
    // A put of the expected shape in pieces: the line alone, part of the
    // body, the rest.
    let whole = put(7, 30_001, b"\r\n");
    for piece in [&whole[..19], &whole[19..10_000], &whole[10_000..]] {
        c.send(piece);
        pause();
    }
    c.expect_reply(b"INSERTED 7\r\n");
    kept.push((7, 30_001));
    // A small put, then one of the old shape.
    c.exchange(put(8, 5, b"\r\n"), b"INSERTED 8\r\n");
    kept.push((8, 5));
    pause();
    c.exchange(put(9, 30_001, b"\r\n"), b"INSERTED 9\r\n");
    kept.push((9, 30_001));
    for (id, len) in kept {
        let mut want = format!("RESERVED {id} {len}\r\n").into_bytes();
        want.extend_from_slice(&body(id, len));
        want.extend_from_slice(b"\r\n");
        c.exchange(b"reserve\r\n", &want);
    }
}
on_both!(puts_of_the_last_shape_and_others);

// ---------------------------------------------------------------------------
// numbers and names

fn numbers_and_names(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    let name200 = "n".repeat(200);
    let name201 = "n".repeat(201);
    let using200 = format!("USING {name200}");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // u32 fields: pri, delay, ttr, bytes.
        (b"put 4294967295 0 60 1\r\nx\r\n".to_vec(), "INSERTED 1"),
        (b"put 4294967296 0 60 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 0 4294967296 60 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 0 0 4294967296 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 0 0 60 4294967296\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 0 0 60 99999999999\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 99999999999999999999999 0 60 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put -1 0 60 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put +1 0 60 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 0 -1 60 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 0 0 -1 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 0 0 60 -1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 0x1 0 60 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 1.5 0 60 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 0 0 60\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 0\t0 60 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 0 0 60 1 2\r\n".to_vec(), "BAD_FORMAT"),
        (b"put 00 0 60 1\r\ny\r\n".to_vec(), "INSERTED 2"),
        (b"put  0  0  60  1\r\nz\r\n".to_vec(), "INSERTED 3"),
        (b"put 0 4294967295 4294967295 1\r\nd\r\n".to_vec(), "INSERTED 4"),
        // A trailing space is garbage; the body is then read as a command.
        (b"put 0 0 60 1 \r\n".to_vec(), "BAD_FORMAT"),
        (b"x\r\n".to_vec(), "UNKNOWN_COMMAND"),
        // u64 ids.
        (b"delete 18446744073709551615\r\n".to_vec(), "NOT_FOUND"),
        (b"delete 18446744073709551616\r\n".to_vec(), "BAD_FORMAT"),
        (b"delete 99999999999999999999999999\r\n".to_vec(), "BAD_FORMAT"),
        (b"delete -1\r\n".to_vec(), "BAD_FORMAT"),
        (b"delete +1\r\n".to_vec(), "BAD_FORMAT"),
        (b"delete 0\r\n".to_vec(), "NOT_FOUND"),
        (b"delete 999 \r\n".to_vec(), "BAD_FORMAT"),
        (b"delete 1x\r\n".to_vec(), "BAD_FORMAT"),
        (b"peek 18446744073709551615\r\n".to_vec(), "NOT_FOUND"),
        (b"peek 18446744073709551616\r\n".to_vec(), "BAD_FORMAT"),
        (b"peek -1\r\n".to_vec(), "BAD_FORMAT"),
        (b"peek 1 2\r\n".to_vec(), "BAD_FORMAT"),
        (b"kick-job 18446744073709551615\r\n".to_vec(), "NOT_FOUND"),
        (b"kick-job 18446744073709551616\r\n".to_vec(), "BAD_FORMAT"),
        (b"kick-job -1\r\n".to_vec(), "BAD_FORMAT"),
        (b"stats-job 18446744073709551615\r\n".to_vec(), "NOT_FOUND"),
        (b"stats-job 18446744073709551616\r\n".to_vec(), "BAD_FORMAT"),
        (b"stats-job +1\r\n".to_vec(), "BAD_FORMAT"),
        (b"reserve-job 18446744073709551615\r\n".to_vec(), "NOT_FOUND"),
        (b"reserve-job 18446744073709551616\r\n".to_vec(), "BAD_FORMAT"),
        (b"reserve-job -1\r\n".to_vec(), "BAD_FORMAT"),
        (b"touch 18446744073709551615\r\n".to_vec(), "NOT_FOUND"),
        (b"touch 18446744073709551616\r\n".to_vec(), "BAD_FORMAT"),
        (b"touch 999 1\r\n".to_vec(), "BAD_FORMAT"),
        (b"release 18446744073709551615 0 0\r\n".to_vec(), "NOT_FOUND"),
        (b"release 18446744073709551616 0 0\r\n".to_vec(), "BAD_FORMAT"),
        (b"release 1 4294967296 0\r\n".to_vec(), "BAD_FORMAT"),
        (b"release 1 0 4294967296\r\n".to_vec(), "BAD_FORMAT"),
        (b"release 1 -1 0\r\n".to_vec(), "BAD_FORMAT"),
        (b"release 999 0\r\n".to_vec(), "BAD_FORMAT"),
        (b"release 999 0 0 0\r\n".to_vec(), "BAD_FORMAT"),
        (b"bury 18446744073709551615 0\r\n".to_vec(), "NOT_FOUND"),
        (b"bury 1 4294967296\r\n".to_vec(), "BAD_FORMAT"),
        (b"bury 1 +1\r\n".to_vec(), "BAD_FORMAT"),
        (b"bury 999\r\n".to_vec(), "BAD_FORMAT"),
        (b"reserve-with-timeout 99999999999999999999\r\n".to_vec(), "BAD_FORMAT"),
        (b"reserve-with-timeout 0\r\n".to_vec(), "RESERVED 2 1\r\ny"),
        // Tube names: 200 characters is the longest.
        (format!("use {name200}\r\n").into_bytes(), &using200),
        (format!("use {name201}\r\n").into_bytes(), "BAD_FORMAT"),
        (format!("watch {name200}\r\n").into_bytes(), "WATCHING 2"),
        (format!("watch {name201}\r\n").into_bytes(), "BAD_FORMAT"),
        (format!("ignore {name201}\r\n").into_bytes(), "BAD_FORMAT"),
        (format!("stats-tube {name201}\r\n").into_bytes(), "BAD_FORMAT"),
        (format!("pause-tube {name201} 1\r\n").into_bytes(), "BAD_FORMAT"),
        (format!("pause-tube {name200} 4294967296\r\n").into_bytes(), "BAD_FORMAT"),
        (format!("pause-tube {name200} -1\r\n").into_bytes(), "BAD_FORMAT"),
        (format!("pause-tube {name200} 4294967295\r\n").into_bytes(), "PAUSED"),
        (b"use -a\r\n".to_vec(), "BAD_FORMAT"),
        (b"use a*b\r\n".to_vec(), "BAD_FORMAT"),
        (b"use a \r\n".to_vec(), "BAD_FORMAT"),
        (b"use \r\n".to_vec(), "BAD_FORMAT"),
        (b"use a_b-c+d/e;f.g$h(i)\r\n".to_vec(), "USING a_b-c+d/e;f.g$h(i)"),
        (b"use default\r\n".to_vec(), "USING default"),
        // bytes 65535 is the default -z; a bigger body is skipped, even when
        // the header has trailing garbage.
        (put_command(0, 0, 60, vec![b'p'; 65535]), "INSERTED 5"),
        (put_command(0, 0, 60, vec![b'p'; 65536]), "JOB_TOO_BIG"),
        (
            {
                let mut v = b"put 0 0 60 70000 garbage\r\n".to_vec();
                v.extend(std::iter::repeat_n(b'g', 70002));
                v
            },
            "JOB_TOO_BIG",
        ),
        (b"list-tube-used\r\n".to_vec(), "USING default"),
    ];
    for (input, want) in &cases {
        let want = format!("{want}\r\n");
        c.send(input);
        let got = c.read_reply();
        assert_eq!(show(&got), show(want.as_bytes()), "input {}", show(&input[..input.len().min(80)]));
    }
    assert_eq!(&c.yaml("stats-job 1")["pri"], "4294967295");
    assert_eq!(&c.yaml("stats-job 4")["delay"], "4294967295");
    assert_eq!(&c.yaml("stats-job 4")["ttr"], "4294967295");
    assert_eq!(c.stat("total-jobs"), "5");
}
on_both!(numbers_and_names);

/// `kick <bound>` is parsed like beanstalkd 1.12's strtoul: a negative bound
/// wraps to a huge one, trailing garbage is ignored, but no digits at all is
/// BAD_FORMAT.
fn kick_bound_parsing(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    c.exchange(b"kick\r\n", b"UNKNOWN_COMMAND\r\n");
    c.exchange(b"kick \r\n", b"BAD_FORMAT\r\n");
    c.exchange(b"kick abc\r\n", b"BAD_FORMAT\r\n");
    c.exchange(b"kick 99999999999999999999999\r\n", b"BAD_FORMAT\r\n");
    for id in 1..=3 {
        c.exchange(b"put 0 0 60 1\r\nb\r\n", format!("INSERTED {id}\r\n").as_bytes());
        c.exchange(b"reserve\r\n", format!("RESERVED {id} 1\r\nb\r\n").as_bytes());
        c.exchange(format!("bury {id} 0\r\n").as_bytes(), b"BURIED\r\n");
    }
    c.exchange(b"kick 1abc\r\n", b"KICKED 1\r\n");
    c.exchange(b"kick 1 2\r\n", b"KICKED 1\r\n");
    c.exchange(b"kick -1\r\n", b"KICKED 1\r\n");
    c.exchange(b"kick 0\r\n", b"KICKED 0\r\n");
}
on_both!(kick_bound_parsing);

// ---------------------------------------------------------------------------
// disconnects

/// A client that half-closes while blocked in `reserve` gets TIMED_OUT, and
/// then the server closes the connection; a later job is not handed to it.
fn half_close_while_reserving(bin: &Binary) {
    let s = bin.server().start();
    let mut watcher = s.connect();
    for command in ["reserve\r\n", "reserve-with-timeout 100\r\n"] {
        let mut waiter = s.connect();
        waiter.send(command.as_bytes());
        let waiting = wait_until(Duration::from_secs(10), || watcher.stat("current-waiting") == "1");
        assert!(waiting, "{}: the client is not waiting", s.name);
        waiter.shutdown_write().unwrap();
        waiter.expect_reply(b"TIMED_OUT\r\n");
        assert!(waiter.is_closed(), "{}: connection not closed after TIMED_OUT", s.name);
        let gone = wait_until(Duration::from_secs(10), || watcher.stat("current-waiting") == "0");
        assert!(gone, "{}: the waiter is still waiting", s.name);
    }
    // No job is lost to a dead waiter.
    watcher.exchange(b"put 0 0 60 3\r\nabc\r\n", b"INSERTED 1\r\n");
    watcher.exchange(b"reserve-with-timeout 0\r\n", b"RESERVED 1 3\r\nabc\r\n");
}
on_both!(half_close_while_reserving);

/// Clients vanishing mid-command or holding reservations lose no job and
/// leave the server serving.
fn disconnects_lose_nothing(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    c.exchange(b"put 0 0 60 3\r\none\r\n", b"INSERTED 1\r\n");
    {
        let mut worker = s.connect();
        worker.exchange(b"reserve\r\n", b"RESERVED 1 3\r\none\r\n");
        // Dropped while holding job 1.
    }
    {
        let mut producer = s.connect();
        producer.send(b"put 0 0 60 10\r\nabc"); // body cut short
    }
    {
        let mut producer = s.connect();
        producer.send(b"put 0 0 60 10"); // header cut short
    }
    {
        let mut junk = s.connect();
        junk.send([b'j'; 100_000]); // an over-long line cut short
    }
    {
        let mut big = s.connect();
        big.send(b"put 0 0 60 1000000\r\n");
        big.send([b'j'; 5000]); // an oversized body cut short
    }
    let gone = wait_until(Duration::from_secs(10), || c.stat("current-connections") == "1");
    assert!(gone, "{}: the clients' connections are still counted", s.name);
    // Job 1 is back in the ready queue, and no other job appeared.
    c.exchange(b"reserve-with-timeout 0\r\n", b"RESERVED 1 3\r\none\r\n");
    assert_eq!(c.stat("total-jobs"), "1");
    assert_eq!(c.stat("current-jobs-reserved"), "1");
    assert_eq!(c.stat("current-jobs-ready"), "0");
    c.exchange(b"delete 1\r\n", b"DELETED\r\n");
}
on_both!(disconnects_lose_nothing);
