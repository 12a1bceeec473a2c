//! A gzip-compressed newc cpio archive: the initramfs the test VMs boot from.
//!
//! The kernel unpacks it into its root tmpfs and runs `/init`. Written here rather than by
//! `cpio` so that file modes, owners and device nodes do not depend on the host's files or on
//! running as root.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use flate2::Compression;
use flate2::write::GzEncoder;

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// Builds an initramfs entry by entry. Parent directories must be added before their
/// contents; paths are absolute (`/bin/busybox`).
pub struct Initramfs {
    out: GzEncoder<Vec<u8>>,
    next_inode: u32,
}

impl Initramfs {
    /// An empty archive. Fast compression: the archive is rebuilt for every VM boot and
    /// the kernel decompresses it under emulation, where a few more megabytes cost less time
    /// than better compression does on the host.
    pub fn new() -> Initramfs {
        Initramfs { out: GzEncoder::new(Vec::new(), Compression::fast()), next_inode: 1 }
    }

    /// Adds directories (mode 0755), e.g. `["/bin", "/proc"]`.
    pub fn dirs(&mut self, paths: &[&str]) -> Result<()> {
        for path in paths {
            self.entry(path, S_IFDIR | 0o755, 0, &[])?;
        }
        Ok(())
    }

    /// Adds a regular file with the given permission bits (0o755 for programs).
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.entry(path, S_IFREG | mode, 0, data)
    }

    /// Adds a copy of a host file, keeping only whether it is executable.
    pub fn copy(&mut self, path: &str, source: &Path) -> Result<()> {
        let data = std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
        let mode = if is_executable(source) { 0o755 } else { 0o644 };
        self.file(path, mode, &data)
    }

    /// Adds a character device node. The kernel needs `/dev/console` before `/init` runs to
    /// give it a stdin/stdout.
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> Result<()> {
        self.entry(path, S_IFCHR | mode, (major << 8) | minor, &[])
    }

    /// Writes the trailer and returns the compressed archive.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        self.entry("TRAILER!!!", 0, 0, &[])?;
        Ok(self.out.finish()?)
    }

    /// One newc record: a 110-byte ASCII header, the NUL-terminated name and the data, each
    /// padded to 4 bytes. `rdev` packs major << 8 | minor.
    fn entry(&mut self, path: &str, mode: u32, rdev: u32, data: &[u8]) -> Result<()> {
        let name = path.trim_start_matches('/');
        let name = if name.is_empty() { "." } else { name };
        let inode = self.next_inode;
        self.next_inode += 1;
        let nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        let fields = [
            inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so archives do not change with the clock
            u32::try_from(data.len()).context("file too big for newc")?,
            0, // dev major
            0, // dev minor
            rdev >> 8,
            rdev & 0xff,
            u32::try_from(name.len() + 1)?,
            0, // check
        ];
        let header: String =
            std::iter::once("070701".to_string()).chain(fields.iter().map(|field| format!("{field:08x}"))).collect();
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(header.len() + name.len() + 1)?;
        self.out.write_all(data)?;
        self.pad(data.len())?;
        Ok(())
    }

    fn pad(&mut self, written: usize) -> Result<()> {
        let zeros = (4 - written % 4) % 4;
        self.out.write_all(&[0; 3][..zeros])?;
        Ok(())
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn unpacked(archive: Initramfs) -> Vec<u8> {
        let gz = archive.finish().unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut raw).unwrap();
        raw
    }

    #[test]
    fn writes_padded_newc_records() {
        let mut archive = Initramfs::new();
        archive.dirs(&["/bin"]).unwrap();
        archive.file("/bin/hello", 0o755, b"hi!!!").unwrap();
        let raw = unpacked(archive);
        let text = String::from_utf8_lossy(&raw);
        // "bin": header 110 + name 4 = 114, padded to 116.
        assert!(text.starts_with("070701"));
        assert_eq!(&raw[110..114], b"bin\0");
        assert_eq!(&raw[116..122], b"070701");
        // /bin/hello: mode 0100755, size 5, name "bin/hello\0" (10 bytes).
        let hello = &text[116..];
        assert_eq!(&hello[14..22], "000081ed");
        assert_eq!(&hello[54..62], "00000005");
        assert_eq!(&hello[94..102], "0000000a");
        // Header 110 + name 10 = 120: the data starts right there, then pads to 128.
        assert_eq!(&hello[120..125], "hi!!!");
        assert_eq!(&raw[116 + 125..116 + 128], &[0, 0, 0]);
        assert!(text.ends_with("TRAILER!!!\0\0\0\0"));
        assert_eq!(raw.len() % 4, 0);
    }

    #[test]
    fn device_numbers_go_in_rdev() {
        let mut archive = Initramfs::new();
        archive.char_device("/dev/console", 0o600, 5, 1).unwrap();
        let raw = unpacked(archive);
        let text = String::from_utf8_lossy(&raw[..110]);
        assert_eq!(&text[14..22], "00002180");
        assert_eq!(&text[78..86], "00000005");
        assert_eq!(&text[86..94], "00000001");
    }
}
