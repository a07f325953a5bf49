//! Normalisation of replies: job ids mapped to `$n`, run-dependent stats
//! masked, `differ` values replaced by a marker, bytes escaped.

/// Maps each server's job ids to their order of first appearance.
#[derive(Default)]
pub(crate) struct IdMap {
    pub(crate) ids: Vec<String>,
    pub(crate) raw: bool,
}

impl IdMap {
    pub(crate) fn symbol(&mut self, id: &str) -> String {
        let n = match self.ids.iter().position(|x| x == id) {
            Some(i) => i + 1,
            None => {
                self.ids.push(id.to_string());
                self.ids.len()
            }
        };
        if self.raw { id.to_string() } else { format!("${n}") }
    }
}

/// Keys of `stats` whose values differ from run to run.
pub(crate) const MASKED_STATS: &[&str] =
    &["pid", "uptime", "rusage-utime", "rusage-stime", "id", "hostname", "os", "platform", "version"];

/// Deliberate departure (different binlog file layouts): at startup
/// beanstalkd always opens a new file `binlog.(max+1)` for what it writes
/// next, where sprout goes on writing its current file; and with three files
/// or more beanstalkd compacts, rewriting live jobs of the oldest file into
/// the current one. Verified: after one restart beanstalkd shows
/// `binlog-current-index: 2` and a new job's `file: 2` where sprout shows 1
/// and 1; after a second restart beanstalkd migrated 5 jobs at its first
/// logged write (`binlog-records-migrated: 5`, `-written: 8`) where sprout,
/// compacting by its own rules, showed 0 and 3. So these `stats` keys and the
/// stats-job `file` are masked from the first `restart` on; before it they
/// are compared (`binlog.script`).
pub(crate) const MASKED_AFTER_RESTART: &[&str] = MASKED_BINLOG;

/// The binlog counters of `stats` (all but `binlog-max-size`).
///
/// Deliberate departure (different binlog file formats and compaction), for
/// scripts with `option mask-binlog`: once files fill up (small `-s`), the
/// two servers rotate at different points, collect and compact differently
/// (verified with `-s 4096`, 200 puts and deletes, before any restart:
/// beanstalkd on binlog.7, sprout on binlog.5), so these and the stats-job
/// `file` are masked throughout.
pub(crate) const MASKED_BINLOG: &[&str] =
    &["binlog-oldest-index", "binlog-current-index", "binlog-records-migrated", "binlog-records-written"];

/// Normalisation state of one run.
pub(crate) struct Norm {
    pub(crate) ids: IdMap,
    /// Set by the first `restart`: see `MASKED_AFTER_RESTART`.
    pub(crate) restarted: bool,
    /// `option mask-binlog`: see `MASKED_BINLOG`.
    pub(crate) mask_binlog: bool,
}

/// A `differ KEY: ...` departure being checked at one step.
pub(crate) struct FieldCheck {
    pub(crate) key: String,
    /// The value this server must show.
    pub(crate) expected: String,
    /// What replaces the value (when it is the expected one) in both
    /// transcripts.
    pub(crate) marker: String,
    /// The values this server showed for the key.
    pub(crate) seen: Vec<String>,
}

/// Maps job ids, masks run-dependent stats, applies the step's field
/// departures, and escapes the reply.
pub(crate) fn normalise(reply: &[u8], norm: &mut Norm, checks: &mut [FieldCheck]) -> String {
    let masks = (norm.restarted, norm.mask_binlog);
    let ids = &mut norm.ids;
    let nl = reply.iter().position(|&b| b == b'\n').unwrap();
    let (line, body) = reply.split_at(nl + 1);
    let Some(text) = std::str::from_utf8(line).ok().and_then(|t| t.strip_suffix("\r\n")) else {
        return escape(reply);
    };
    let words: Vec<&str> = text.split(' ').collect();
    match words.as_slice() {
        ["INSERTED", id] | ["BURIED", id] if is_number(id) => format!("{} {}\\r\\n", words[0], ids.symbol(id)),
        ["RESERVED", id, n] | ["FOUND", id, n] if is_number(id) => {
            format!("{} {} {n}\\r\\n{}", words[0], ids.symbol(id), escape(body))
        }
        ["OK", _] if body.ends_with(b"\r\n") => {
            let yaml = normalise_yaml(&body[..body.len() - 2], ids, masks, checks);
            format!("OK {}\\r\\n{}\\r\\n", yaml.len(), escape(&yaml))
        }
        _ => escape(reply),
    }
}

pub(crate) fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `masks` is (restarted, mask-binlog), see `Norm`.
pub(crate) fn normalise_yaml(yaml: &[u8], ids: &mut IdMap, masks: (bool, bool), checks: &mut [FieldCheck]) -> Vec<u8> {
    let (restarted, mask_binlog) = masks;
    let Ok(text) = std::str::from_utf8(yaml) else {
        return yaml.to_vec();
    };
    let is_stats = text.contains("\npid: ");
    let is_job = text.starts_with("---\nid: ") && text.contains("\ntube: ");
    let is_tube = text.starts_with("---\nname: ");
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| {
            let Some((key, value)) = line.split_once(": ") else {
                return line.to_string();
            };
            // Deliberate departure (1.13 style): sprout quotes these strings.
            let quoted = (is_stats && matches!(key, "hostname" | "os" | "platform"))
                || (is_tube && key == "name")
                || (is_job && key == "tube");
            let value = if quoted && value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
                value[1..value.len() - 1].to_string()
            } else {
                value.to_string()
            };
            if let Some(check) = checks.iter_mut().find(|c| c.key == key) {
                check.seen.push(value.clone());
                if value == check.expected {
                    return format!("{key}: {}", check.marker);
                }
            }
            if is_stats && MASKED_STATS.contains(&key) {
                format!("{key}: <masked>")
            } else if mask_binlog && ((is_stats && MASKED_BINLOG.contains(&key)) || (is_job && key == "file")) {
                format!("{key}: <masked binlog>")
            } else if restarted && ((is_stats && MASKED_AFTER_RESTART.contains(&key)) || (is_job && key == "file")) {
                format!("{key}: <masked after restart>")
            } else if is_job && key == "id" && is_number(&value) {
                format!("{key}: {}", ids.symbol(&value))
            } else {
                format!("{key}: {value}")
            }
        })
        .collect();
    lines.join("\n").into_bytes()
}

/// Escapes bytes for display: `\r \n \t \0 \\ \"` and `\xHH`; long runs of a
/// repeated byte are shortened to `{c*count}` to keep diffs readable.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let run = bytes[i..].iter().take_while(|&&x| x == b).count();
        let one = match b {
            b'\r' => "\\r".to_string(),
            b'\n' => "\\n".to_string(),
            b'\t' => "\\t".to_string(),
            0 => "\\0".to_string(),
            b'\\' => "\\\\".to_string(),
            b'"' => "\\\"".to_string(),
            b'{' => "\\{".to_string(),
            0x20..=0x7e => (b as char).to_string(),
            _ => format!("\\x{b:02x}"),
        };
        if run >= 16 {
            out.push_str(&format!("{{{one}*{run}}}"));
            i += run;
        } else {
            out.push_str(&one);
            i += 1;
        }
    }
    out
}
