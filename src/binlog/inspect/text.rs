//! The report as an operator reads it: the directory, each file, the live
//! jobs per tube, the space, then damage and notes.

use std::fmt;

use super::report::{DirFormat, FileFormat, FileReport, RecordCounts, Report, StateCounts};

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let has = |format: FileFormat| self.files.iter().any(|file| file.format == format);
        let whose = match self.format {
            DirFormat::Sprout => match (has(FileFormat::SproutV1), has(FileFormat::SproutV2)) {
                (true, true) => "sprout's binlog (format versions 1 and 2)",
                (true, false) => "sprout's binlog (format version 1)",
                (false, true) => "sprout's binlog (format version 2)",
                // Spare files only.
                (false, false) => "sprout's binlog",
            },
            DirFormat::Beanstalkd => "beanstalkd's binlog (sprout -b takes it over)",
            DirFormat::Mixed => "both sprout's and beanstalkd's files",
            DirFormat::None => "no binlog records",
        };
        writeln!(f, "{}: {whose}", self.dir)?;

        writeln!(f, "\nfiles: {} ({} bytes)", self.files.len(), self.space.files_bytes)?;
        let name_width = self.files.iter().map(|file| file.name.len()).max().unwrap_or(0);
        let size_width = self.files.iter().map(|file| file.size.to_string().len()).max().unwrap_or(0);
        for file in &self.files {
            write_file(f, file, name_width, size_width)?;
        }

        let all = &self.live.all;
        writeln!(
            f,
            "\nlive jobs: {}: {} ready ({} of them logged reserved), {} delayed, {} buried",
            all.total, all.ready, all.reserved, all.delayed, all.buried
        )?;
        write_tubes(f, self)?;
        writeln!(f, "next job id: {}", self.next_id)?;

        let space = &self.space;
        writeln!(f, "\nspace:")?;
        writeln!(f, "  the files take {} bytes", space.files_bytes)?;
        writeln!(
            f,
            "  a log holding only the live jobs would need {} bytes of records (a header, one full record a job)",
            space.live_records_bytes
        )?;
        writeln!(
            f,
            "  keeping one file of headroom ({} bytes), compaction could give back about {} bytes",
            space.headroom_bytes, space.reclaimable_bytes
        )?;

        if self.damage.is_empty() {
            writeln!(f, "\ndamage: none")?;
        } else {
            writeln!(f, "\ndamage: {}", self.damage.len())?;
            for damage in &self.damage {
                match (&damage.file, damage.offset) {
                    (Some(file), Some(offset)) => writeln!(f, "  {file} at offset {offset}: {}", damage.reason)?,
                    (Some(file), None) => writeln!(f, "  {file}: {}", damage.reason)?,
                    (None, _) => writeln!(f, "  {}", damage.reason)?,
                }
            }
        }
        if !self.notes.is_empty() {
            writeln!(f, "notes:")?;
            for note in &self.notes {
                writeln!(f, "  {note}")?;
            }
        }
        Ok(())
    }
}

/// One line a file, and a line for its torn tail or each damage.
fn write_file(f: &mut fmt::Formatter<'_>, file: &FileReport, name_width: usize, size_width: usize) -> fmt::Result {
    let records = match file.records {
        RecordCounts::Sprout { job, state, delete, padding } => {
            let padding = if padding > 0 { format!(", {padding} padding") } else { String::new() };
            format!(": {job} job, {state} state, {delete} delete{padding}")
        }
        RecordCounts::Beanstalkd { full, short, delete } => format!(": {full} full, {short} short, {delete} delete"),
        RecordCounts::None {} => String::new(),
    };
    let (end, records) = match (file.format, file.records) {
        (FileFormat::Spare, _) | (_, RecordCounts::None {}) => (String::new(), String::new()),
        _ => (format!("  records end at {}", file.records_end), records),
    };
    writeln!(
        f,
        "  {:name_width$}  {:13}  {:>size_width$} bytes{end}{records}",
        file.name,
        file.format.describe(),
        file.size
    )?;
    let indent = name_width + 4;
    if let Some(torn) = &file.torn_tail {
        writeln!(
            f,
            "{:indent$}torn tail at offset {} (a write in progress, or a crash; no damage): {}",
            "", torn.offset, torn.reason
        )?;
    }
    for damage in &file.damage {
        writeln!(f, "{:indent$}DAMAGE at offset {}: {}", "", damage.offset, damage.reason)?;
    }
    Ok(())
}

/// The per-tube table, if any job is live.
fn write_tubes(f: &mut fmt::Formatter<'_>, report: &Report) -> fmt::Result {
    if report.live.tubes.is_empty() {
        return Ok(());
    }
    // A long name (up to 200 bytes) widens its own row, not the table.
    let width = report.live.tubes.keys().map(String::len).max().unwrap_or(0).clamp("tube".len(), 32);
    let row = |f: &mut fmt::Formatter<'_>, name: &str, c: &StateCounts| {
        writeln!(
            f,
            "  {name:width$}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
            c.total, c.ready, c.delayed, c.buried, c.reserved
        )
    };
    writeln!(
        f,
        "  {:width$}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
        "tube", "total", "ready", "delayed", "buried", "reserved"
    )?;
    for (name, counts) in &report.live.tubes {
        row(f, name, counts)?;
    }
    Ok(())
}
