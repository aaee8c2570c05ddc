//! Deterministic archive writers: the same entries and time give the same bytes.
//!
//! Every writer sorts its entries by path, stamps them with one fixed time
//! (`SOURCE_DATE_EPOCH`), owner root (uid/gid 0) and the mode given, and stores nothing of
//! the machine that built them (no user names, no host, no build time).

use std::io::{self, Write};

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};

/// One file or directory of an archive or package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, `/`-separated, without a leading `/` or `./`.
    pub path: String,
    /// Permission bits (`0o755`).
    pub mode: u32,
    /// `None` for a directory.
    pub data: Option<Vec<u8>>,
}

impl Entry {
    /// A regular file.
    pub fn file(path: impl Into<String>, mode: u32, data: impl Into<Vec<u8>>) -> Entry {
        Entry {
            path: path.into(),
            mode,
            data: Some(data.into()),
        }
    }

    /// A directory.
    pub fn dir(path: impl Into<String>, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            mode,
            data: None,
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.data.is_none()
    }
}

/// `entries` plus every missing parent directory (mode 0755), sorted by path, so that a
/// directory always comes before what it holds and the order never depends on the caller.
pub fn with_parents(entries: &[Entry]) -> Vec<Entry> {
    let mut all: Vec<Entry> = entries.to_vec();
    for e in entries {
        let mut path = e.path.as_str();
        while let Some((parent, _)) = path.rsplit_once('/') {
            if !all.iter().any(|x| x.path == parent) {
                all.push(Entry::dir(parent, 0o755));
            }
            path = parent;
        }
    }
    all.sort_by(|a, b| a.path.cmp(&b.path));
    all.dedup_by(|a, b| a.path == b.path);
    all
}

/// A gzip stream of `data` with no name and mtime 0 in its header.
pub fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut gz = gz_encoder(Vec::new());
    gz.write_all(data)?;
    gz.finish()
}

fn gz_encoder<W: Write>(w: W) -> GzEncoder<W> {
    // mtime 0 and no file name: the header carries nothing of the build.
    GzBuilder::new().mtime(0).write(w, Compression::best())
}

/// A ustar/GNU tar of `entries` (with their parents), every path prefixed by `prefix`
/// (`"./"` for Debian packages, `"name/"` for a release tarball).
pub fn tar(entries: &[Entry], prefix: &str, mtime: u64) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    if !prefix.is_empty() {
        // The top directory itself comes first (dpkg-deb writes `./` too).
        append(&mut builder, &Entry::dir(prefix, 0o755), prefix, mtime)?;
    }
    for e in with_parents(entries) {
        let path = format!("{prefix}{}", e.path);
        append(&mut builder, &e, &path, mtime)?;
    }
    builder.into_inner()
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    e: &Entry,
    path: &str,
    mtime: u64,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    let data: &[u8] = e.data.as_deref().unwrap_or_default();
    if e.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
    } else {
        header.set_entry_type(tar::EntryType::Regular);
    }
    let path = if e.is_dir() && !path.ends_with('/') {
        format!("{path}/")
    } else {
        path.to_owned()
    };
    header.set_size(data.len() as u64);
    header.set_mode(e.mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_username("root")?;
    header.set_groupname("root")?;
    header.set_mtime(mtime);
    match header.as_gnu_mut() {
        // Written as is: the tar crate's path setter drops the `./` that dpkg-deb writes.
        Some(gnu) if path.len() < gnu.name.len() => {
            gnu.name = [0; 100];
            gnu.name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, data)
        }
        // Longer names go in GNU long-name records.
        _ => builder.append_data(&mut header, path, data),
    }
}

/// A `.tar.gz` of `entries` under `prefix` (see [`tar`]).
pub fn tar_gz(entries: &[Entry], prefix: &str, mtime: u64) -> io::Result<Vec<u8>> {
    gzip(&tar(entries, prefix, mtime)?)
}

/// A `.zip` of `entries` (with their parents), deflated, every entry stamped `mtime` and
/// carrying its Unix mode (so that `unzip` on macOS or Linux restores executables).
pub fn zip(entries: &[Entry], mtime: u64) -> io::Result<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let stamp = dos_time(mtime)?;
    let mut out = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    for e in with_parents(entries) {
        let options = SimpleFileOptions::default()
            .last_modified_time(stamp)
            .unix_permissions(e.mode)
            .compression_method(if e.is_dir() {
                zip::CompressionMethod::Stored
            } else {
                zip::CompressionMethod::Deflated
            });
        match &e.data {
            None => out.add_directory(e.path.as_str(), options),
            Some(data) => out
                .start_file(e.path.as_str(), options)
                .and_then(|()| out.write_all(data).map_err(zip::result::ZipError::Io)),
        }
        .map_err(io::Error::other)?;
    }
    Ok(out.finish().map_err(io::Error::other)?.into_inner())
}

/// The MS-DOS time of `epoch` (UTC), clamped to the format's range (1980 to 2107).
fn dos_time(epoch: u64) -> io::Result<zip::DateTime> {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch.min(i64::MAX as u64) as i64)
        .map_err(io::Error::other)?;
    if t.year() < 1980 {
        return Ok(zip::DateTime::default());
    }
    zip::DateTime::from_date_and_time(
        t.year().min(2107) as u16,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
    .map_err(io::Error::other)
}

/// A Unix `ar` archive (the container of a `.deb`): members in the order given, each
/// stamped `mtime`, owner 0, mode 0644.
pub fn ar(members: &[(&str, &[u8])], mtime: u64) -> io::Result<Vec<u8>> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        if name.len() > 16 || name.contains('/') {
            return Err(io::Error::other(format!("ar member name {name:?}")));
        }
        let header = format!(
            "{name:<16}{mtime:<12}{uid:<6}{gid:<6}{mode:<8}{size:<10}`\n",
            uid = 0,
            gid = 0,
            mode = "100644",
            size = data.len()
        );
        debug_assert_eq!(header.len(), 60);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry::file("opt/endpoint-agent/agent", 0o755, b"\x7fELF".to_vec()),
            Entry::file("lib/systemd/system/x.service", 0o644, b"[Unit]\n".to_vec()),
        ]
    }

    #[test]
    fn parents_are_added_and_sorted_before_children() {
        let paths: Vec<String> = with_parents(&sample())
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            [
                "lib",
                "lib/systemd",
                "lib/systemd/system",
                "lib/systemd/system/x.service",
                "opt",
                "opt/endpoint-agent",
                "opt/endpoint-agent/agent"
            ]
        );
    }

    #[test]
    fn tar_is_the_same_whatever_the_entry_order_and_has_root_owner_and_fixed_mtime() {
        let mut reversed = sample();
        reversed.reverse();
        let a = tar_gz(&sample(), "./", 1_700_000_000).unwrap();
        let b = tar_gz(&reversed, "./", 1_700_000_000).unwrap();
        assert_eq!(a, b);
        let raw = tar(&sample(), "./", 1_700_000_000).unwrap();
        let mut archive = tar::Archive::new(raw.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let h = entry.header();
            assert_eq!(
                (h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()),
                (0, 0, 1_700_000_000)
            );
            assert_eq!(h.username().unwrap(), Some("root"));
            seen.push((
                entry.path().unwrap().display().to_string(),
                h.mode().unwrap(),
            ));
        }
        assert_eq!(seen[0], ("./".to_owned(), 0o755));
        assert!(seen.contains(&("./opt/endpoint-agent/agent".to_owned(), 0o755)));
        assert!(seen.contains(&("./lib/systemd/system/x.service".to_owned(), 0o644)));
    }

    #[test]
    fn a_different_time_gives_a_different_archive() {
        assert_ne!(
            tar_gz(&sample(), "x/", 1).unwrap(),
            tar_gz(&sample(), "x/", 2).unwrap()
        );
    }

    #[test]
    fn zip_is_deterministic_and_keeps_modes() {
        let a = zip(&sample(), 1_700_000_000).unwrap();
        let mut reversed = sample();
        reversed.reverse();
        assert_eq!(a, zip(&reversed, 1_700_000_000).unwrap());
        let mut z = zip::ZipArchive::new(io::Cursor::new(a)).unwrap();
        let f = z.by_name("opt/endpoint-agent/agent").unwrap();
        assert_eq!(f.unix_mode().map(|m| m & 0o7777), Some(0o755));
        let t = f.last_modified().unwrap();
        // 2023-11-14 22:13:20 UTC (DOS time has 2 s resolution).
        assert_eq!(
            (
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            (2023, 11, 14, 22, 13, 20)
        );
    }

    #[test]
    fn ar_members_have_fixed_headers_and_even_padding() {
        let a = ar(&[("debian-binary", b"2.0\n"), ("x", b"abc")], 5).unwrap();
        assert!(a.starts_with(
            b"!<arch>\ndebian-binary   5           0     0     100644  4         `\n2.0\n"
        ));
        assert!(a.ends_with(b"3         `\nabc\n"));
        assert_eq!(a.len() % 2, 0);
    }
}
