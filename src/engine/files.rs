//! Opening the files the element is given (portrait images, `manifest.json`, ONNX graphs,
//! face-model files): only regular files, and never more than a stated size.
//!
//! A FIFO blocks whoever opens it until a writer appears, and a device such as `/dev/zero`
//! never ends, so a size check on `metadata().len()` (0 for both) protects nothing. The file is
//! opened without blocking, what was opened is checked (not the path, which could be swapped
//! between a check and the open), and reading stops at the limit.

use std::fs::{File, FileType};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// One mebibyte, for limits.
pub const MIB: u64 = 1 << 20;

/// `O_NONBLOCK`: opening a FIFO with it returns at once instead of waiting for a writer (it
/// changes nothing for regular files). The value is the platform's ABI constant.
#[cfg(all(
    target_os = "linux",
    not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))
))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(all(target_os = "linux", any(target_arch = "mips", target_arch = "mips64")))]
const O_NONBLOCK: i32 = 0x80;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "sparc", target_arch = "sparc64")
))]
const O_NONBLOCK: i32 = 0x4000;
#[cfg(not(target_os = "linux"))]
const O_NONBLOCK: i32 = 0x4; // macOS and the BSDs

/// What a file that is not a regular file is, in words ("a FIFO (named pipe)", ...).
pub fn describe(t: FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading if it is a regular file of at most `limit` bytes. `what` names
/// the file in errors ("portrait image", "model pack manifest", ...), which say what the path
/// is and how to fix it.
pub fn open_regular(path: &Path, what: &str, limit: u64) -> Result<File> {
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow::anyhow!("{what} {shown} does not exist; fix: check the path")
            }
            std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
                "{what} {shown} cannot be opened: permission denied; fix: make it readable by \
                 this user"
            ),
            _ => anyhow::anyhow!("{what} {shown} cannot be opened: {e}"),
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot inspect {what} {shown}"))?;
    if !meta.is_file() {
        let fix = if meta.is_dir() {
            "give the path of a file inside it, not the directory"
        } else {
            "give the path of a regular file (save the data to a file first); pipes and devices \
             are not read because they can block or never end"
        };
        bail!(
            "{what} {shown} is {}, not a regular file; fix: {fix}",
            describe(meta.file_type())
        );
    }
    if meta.len() > limit {
        bail!("{what} {shown} is {}", too_large(meta.len(), limit));
    }
    Ok(file)
}

fn too_large(len: u64, limit: u64) -> String {
    format!(
        "{} bytes, more than the {} accepted; fix: check that this is the right file",
        len,
        if limit.is_multiple_of(MIB) {
            format!("{} MiB", limit / MIB)
        } else {
            format!("{limit} bytes")
        }
    )
}

/// Reads all of `path` (a regular file of at most `limit` bytes; see [`open_regular`]).
/// Reading stops at the limit even if the file grows while it is read.
pub fn read(path: &Path, what: &str, limit: u64) -> Result<Vec<u8>> {
    let file = open_regular(path, what, limit)?;
    let expected = file.metadata().map(|m| m.len()).unwrap_or(0).min(limit);
    let mut bytes = Vec::with_capacity(expected as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{what} {} is {}",
            path.display(),
            too_large(bytes.len() as u64, limit)
        );
    }
    Ok(bytes)
}

/// Reads `path` as UTF-8 text (see [`read`]).
pub fn read_to_string(path: &Path, what: &str, limit: u64) -> Result<String> {
    String::from_utf8(read(path, what, limit)?)
        .with_context(|| format!("{what} {} is not UTF-8 text", path.display()))
}

/// Checks that `path` is a regular file of at most `limit` bytes, for a library that opens it
/// by name (ONNX Runtime).
pub fn check_regular(path: &Path, what: &str, limit: u64) -> Result<()> {
    open_regular(path, what, limit).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("gst-dawn-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tmp("fifo");
        let fifo = d.join("pipe.png");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo (coreutils) runs");
        assert!(status.success());
        // Nobody ever writes: a blocking open would never return.
        let err = read(&fifo, "portrait image", MIB).unwrap_err().to_string();
        assert!(err.contains("is a FIFO (named pipe)"), "{err}");
        assert!(err.contains("pipe.png") && err.contains("fix:"), "{err}");
    }

    #[test]
    fn devices_and_directories_are_refused_and_files_are_bounded() {
        let err = read(Path::new("/dev/zero"), "manifest", MIB)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/dev/zero is a character device"), "{err}");
        let d = tmp("kinds");
        let err = read(&d, "portrait image", MIB).unwrap_err().to_string();
        assert!(
            err.contains("is a directory") && err.contains("fix:"),
            "{err}"
        );
        let err = read(&d.join("none"), "portrait image", MIB)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        let f = d.join("big");
        std::fs::write(&f, vec![1u8; 2000]).unwrap();
        let err = read(&f, "manifest", 1000).unwrap_err().to_string();
        assert!(
            err.contains("2000 bytes, more than the 1000 bytes"),
            "{err}"
        );
        assert_eq!(read(&f, "manifest", 2000).unwrap().len(), 2000);
    }
}
