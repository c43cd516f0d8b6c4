//! `/proc/PID/mountinfo`, parsed: what is mounted where, from which source.

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the mounted device.
    pub dev: (u32, u32),
    /// The mount point (unescaped).
    pub mount_point: String,
    /// Filesystem type.
    pub fs_type: String,
    /// Mount source (device path).
    pub source: String,
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(oct) = s.get(i + 1..i + 4)
            && let Ok(v) = u8::from_str_radix(oct, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let _id = l.next()?;
    let _parent = l.next()?;
    let (maj, min) = l.next()?.split_once(':')?;
    let _root = l.next()?;
    let mount_point = unescape(l.next()?);
    let mut r = right.split(' ');
    let fs_type = r.next()?.to_string();
    let source = unescape(r.next()?);
    Some(Mount {
        dev: (maj.parse().ok()?, min.parse().ok()?),
        mount_point,
        fs_type,
        source,
    })
}

/// Escapes a path as mountinfo writes it.
fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// The mount at `mount_point` in mountinfo text, parsing only that line
/// (the last one wins, as mounts stack). The status check's fast path.
pub fn find_in(text: &str, mount_point: &str) -> Option<Mount> {
    let want = mount_point.trim_end_matches('/');
    let want = escape(if want.is_empty() { "/" } else { want });
    text.lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .and_then(parse_line)
}

/// The mount at `mount_point` (the last one wins, as mounts stack).
pub fn find<'a>(mounts: &'a [Mount], mount_point: &str) -> Option<&'a Mount> {
    let want = mount_point.trim_end_matches('/');
    let want = if want.is_empty() { "/" } else { want };
    mounts.iter().rev().find(|m| m.mount_point == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_unescapes() {
        let text = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    40 36 7:3 / /srv/x rw shared:5 - ext4 /dev/loop3 rw\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, "/mnt/with space");
        assert_eq!(m[1].dev, (7, 3));
        assert_eq!(find(&m, "/srv/x/").unwrap().source, "/dev/loop3");
        assert_eq!(find_in(text, "/srv/x").unwrap().dev, (7, 3));
        assert_eq!(find_in(text, "/mnt/with space").unwrap().fs_type, "ext3");
        assert!(find_in(text, "/srv").is_none());
    }
}
