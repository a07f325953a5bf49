//! What one connection sees of another's commands in flight: the three
//! places where sprout and beanstalkd 1.12 may answer differently although
//! each connection sends the same bytes (protocol.md, departures 4, 11 and
//! 12). Each case runs against both servers and checks each one's answer.

mod support;

use std::time::Duration;

use support::{Binary, Client, Ending, on_both, show, wait_until};

/// Waits until the server has taken `n` connections' reserves (each is
/// blocked in it), so that what is sent next comes after them.
fn wait_for_waiters(observer: &mut Client, n: u64) {
    let all_waiting = wait_until(Duration::from_secs(10), || observer.stats().num("current-waiting") == n);
    assert!(all_waiting, "{n} waiting reserves never registered");
}

/// Departure 4. Conn a is blocked in a reserve with `stats-tube t` queued
/// behind it; conn b sends, in one write, a put (which wakes a), three more
/// commands and `watch t` (which creates t). beanstalkd runs one command
/// per connection per wake-up, so a's `stats-tube t` runs while b is still
/// on its `list-tube-used`s and t does not exist yet: NOT_FOUND. sprout runs
/// b's whole write first, so t exists: OK. Both are answers a client could
/// get from beanstalkd had b's write come a moment earlier.
fn a_batch_runs_ahead_of_a_connection_it_wakes(bin: &Binary) {
    let s = bin.server().start();
    let mut observer = s.connect();
    let mut a = s.connect();
    a.send(b"reserve\r\nstats-tube t\r\n");
    wait_for_waiters(&mut observer, 1);
    let mut b = s.connect();
    b.send(b"put 0 0 10 1\r\nx\r\nlist-tube-used\r\nlist-tube-used\r\nlist-tube-used\r\nwatch t\r\n");
    for want in ["INSERTED 1\r\n", "USING default\r\n", "USING default\r\n", "USING default\r\n", "WATCHING 2\r\n"] {
        b.expect_reply(want);
    }
    a.expect_reply(b"RESERVED 1 1\r\nx\r\n");
    let stats_tube = a.read_reply();
    if bin.is_sprout() {
        assert!(stats_tube.starts_with(b"OK "), "sprout: {}", show(&stats_tube));
    } else {
        assert_eq!(show(&stats_tube), show(b"NOT_FOUND\r\n"), "beanstalkd");
    }
}
on_both!(a_batch_runs_ahead_of_a_connection_it_wakes);

/// Departure 11. While conn c's put body is still arriving, its job's id is
/// taken (the next put gets the next id, on both servers), but the job does
/// not exist yet. beanstalkd already has it in its table: `stats-job` says
/// `state: invalid` and `peek` returns the unfilled body buffer (the bytes
/// that came, then whatever the buffer held). sprout answers NOT_FOUND to
/// both until the body is whole. Every other command treats the job as
/// absent on both.
fn a_job_whose_body_is_still_arriving(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    let mut d = s.connect();
    c.send(b"put 7 0 1 10\r\nabc");
    // The server has read the put line once the put is counted.
    let counted = wait_until(Duration::from_secs(10), || d.stats().num("cmd-put") == 1);
    assert!(counted, "the put line was never read");
    for command in ["peek-ready", "delete 1", "kick-job 1", "reserve-job 1", "bury 1 0", "touch 1"] {
        d.exchange(format!("{command}\r\n"), "NOT_FOUND\r\n");
    }
    let stats_job = d.request(b"stats-job 1\r\n");
    // (beanstalkd's unfilled buffer need not even end in CRLF.)
    d.send(b"peek 1\r\n");
    let peek = d.try_read_reply(Duration::from_secs(10)).expect("a reply to peek");
    if bin.is_sprout() {
        assert_eq!(show(&stats_job), show(b"NOT_FOUND\r\n"));
        assert_eq!(show(&peek), show(b"NOT_FOUND\r\n"));
    } else {
        let text = String::from_utf8_lossy(&stats_job);
        assert!(text.contains("\nid: 1\n") && text.contains("\nstate: invalid\n"), "beanstalkd: {text}");
        assert!(peek.starts_with(b"FOUND 1 10\r\nabc"), "beanstalkd: {}", show(&peek));
    }
    c.send(b"defghij\r\n");
    c.expect_reply(b"INSERTED 1\r\n");
    d.exchange(b"peek 1\r\n", b"FOUND 1 10\r\nabcdefghij\r\n");
}
on_both!(a_job_whose_body_is_still_arriving);

/// Departure 12. `quit` with more input behind it, more than beanstalkd
/// reads at once (it reads at most a line's 224 bytes at a time): beanstalkd
/// closes with that input unread, so the kernel resets the connection, and a
/// reply it had not sent yet is lost (here the replies before `quit` are
/// sent first, so they arrive; the ending is a reset either way). sprout
/// sends every reply before `quit`, then closes cleanly.
fn quit_with_unread_input_behind_it(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    let mut input = b"list-tube-used\r\nquit\r\n".to_vec();
    input.extend(b"list-tube-used\r\n".repeat(200));
    c.send(&input);
    let (received, ending) = c.read_until_closed();
    if bin.is_sprout() {
        assert_eq!(show(&received), show(b"USING default\r\n"));
        assert_eq!(ending, Ending::Closed, "sprout closes cleanly");
    } else {
        let whole_or_lost = received.is_empty() || received == b"USING default\r\n";
        assert!(whole_or_lost, "beanstalkd sent {}", show(&received));
        assert_eq!(ending, Ending::Reset, "beanstalkd resets");
    }
}
on_both!(quit_with_unread_input_behind_it);

/// A `pause-tube t 0` followed, in the same write, by a reserve: the pause
/// has ended by the next command on both servers (beanstalkd ticks between
/// a connection's commands; sprout runs what fell due before each command).
fn a_zero_second_pause_has_ended_by_the_next_command(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    c.exchange(b"put 0 0 10 1\r\nx\r\n", b"INSERTED 1\r\n");
    c.send(b"pause-tube default 0\r\nreserve-with-timeout 0\r\n");
    c.expect_reply(b"PAUSED\r\n");
    c.expect_reply(b"RESERVED 1 1\r\nx\r\n");
}
on_both!(a_zero_second_pause_has_ended_by_the_next_command);

/// Departure 4's last case. A connection blocked in a reserve, with two
/// puts queued behind it in the same write, closes. beanstalkd answers the
/// reserve `TIMED_OUT` to a peer that is gone, runs one queued put and
/// closes on the failed write; sprout runs every command the client sent
/// before it closed. Neither reply reaches anyone.
fn a_closed_waiting_connection_s_queued_commands(bin: &Binary) {
    let s = bin.server().start();
    let mut observer = s.connect();
    let mut w = s.connect();
    w.send(b"reserve\r\nput 0 0 10 1\r\na\r\nput 0 0 10 1\r\nb\r\n");
    wait_for_waiters(&mut observer, 1);
    drop(w);
    let gone = wait_until(Duration::from_secs(10), || observer.stats().num("current-connections") == 1);
    assert!(gone, "the closed connection is still counted");
    let want = if bin.is_sprout() { 2 } else { 1 };
    assert_eq!(observer.stats().num("current-jobs-ready"), want, "{}", bin.name);
}
on_both!(a_closed_waiting_connection_s_queued_commands);

/// A job's `age` counts from its put line, not from when its body was
/// whole: beanstalkd makes the job (and stamps it) when it reads the line.
/// A body that comes 1.5 s after its line makes a job at least 1 s old at
/// once on both servers. (Its delay counts from the body, on both.)
fn age_counts_from_the_put_line(bin: &Binary) {
    let s = bin.server().start();
    let mut c = s.connect();
    let mut d = s.connect();
    c.send(b"put 0 0 60 3\r\nab");
    let counted = wait_until(Duration::from_secs(10), || d.stats().num("cmd-put") == 1);
    assert!(counted, "the put line was never read");
    std::thread::sleep(Duration::from_millis(1500));
    c.send(b"c\r\n");
    c.expect_reply(b"INSERTED 1\r\n");
    let age = d.stats_job(1).expect("the job").num("age");
    assert!(age >= 1, "age {age}: counted from the body, not the line");
}
on_both!(age_counts_from_the_put_line);
