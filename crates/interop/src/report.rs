//! How the benchmarks print their figures: rates with thousands separators,
//! durations, and a Markdown table of Cairn beside the reference.

use std::time::Duration;

/// A memory field of a process's `/proc/<pid>/status` (`VmHWM:` is the
/// peak RSS, `VmRSS:` the current), in MiB; `pid` `None` is this process.
/// 0 where it cannot be read.
pub fn status_mib(pid: Option<u32>, field: &str) -> f64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The peak RSS of a process (`None`: this one), in MiB.
pub fn peak_rss_mib(pid: Option<u32>) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// The CPU time (user and system) a process has used so far: `pid`, or
/// `"self"` for this one.
pub fn process_cpu(pid: &str) -> Option<Duration> {
    stat_cpu(&std::path::Path::new("/proc").join(pid).join("stat"))
}

/// The CPU time the live thread of this process named `name` has used.
pub fn thread_cpu(name: &str) -> Option<Duration> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .find(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .and_then(|task| stat_cpu(&task.path().join("stat")))
}

/// The CPU time in a `/proc` `stat` file (a process's or a thread's).
fn stat_cpu(stat: &std::path::Path) -> Option<Duration> {
    let stat = std::fs::read_to_string(stat).ok()?;
    // After the command name (in parentheses, which may hold spaces):
    // state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

#[cfg(unix)]
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    }
}

#[cfg(not(unix))]
fn clock_ticks() -> f64 {
    100.0
}

/// Operations per second.
pub fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1.23 s`, or `45.6 ms` under a second.
pub fn duration_text(elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else {
        format!("{:.1} ms", secs * 1e3)
    }
}

/// Prints a Markdown table: the first column left-aligned, the rest right.
pub fn print_table(headers: [&str; 4], rows: &[[String; 4]]) {
    let rows: Vec<Vec<String>> = rows.iter().map(|row| row.to_vec()).collect();
    print_grid(&headers, &rows);
}

/// [`print_table`] with any number of columns (a row may be shorter than
/// the headers; the missing cells are empty).
pub fn print_grid(headers: &[&str], rows: &[Vec<String>]) {
    for line in grid_lines(headers, rows) {
        println!("{line}");
    }
}

fn grid_lines(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::from("|");
        for (i, w) in widths.iter().enumerate() {
            let cell = cells.get(i).copied().unwrap_or("");
            let pad = " ".repeat(w - cell.chars().count().min(*w));
            if i == 0 {
                out.push_str(&format!(" {cell}{pad} |"));
            } else {
                out.push_str(&format!(" {pad}{cell} |"));
            }
        }
        out
    };
    let mut lines = vec![line(headers)];
    let rule: String = widths
        .iter()
        .map(|w| format!("|{}", "-".repeat(w + 2)))
        .collect();
    lines.push(format!("{rule}|"));
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        lines.push(line(&cells));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1.50 s");
        assert_eq!(duration_text(Duration::from_micros(45_600)), "45.6 ms");
    }

    #[test]
    fn grids_align() {
        let rows = vec![
            vec!["a".to_owned(), "1".to_owned(), "22".to_owned()],
            vec!["bbb".to_owned(), "333".to_owned()],
        ];
        assert_eq!(
            grid_lines(&["row", "x", "y"], &rows),
            [
                "| row |   x |  y |",
                "|-----|-----|----|",
                "| a   |   1 | 22 |",
                "| bbb | 333 |    |",
            ]
        );
    }
}
