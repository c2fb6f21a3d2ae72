//! Reading records from files, directories and stdin: NDJSON (one record per non-blank line) or one record
//! per `.json` file. Owns where a record came from (source, line), never what it means.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One input record and where it came from.
pub struct Record {
    pub source: String,
    /// 1-based line number for NDJSON; `None` for a whole `.json` file.
    pub line: Option<u64>,
    pub bytes: Vec<u8>,
}

/// An input that could not be read (the only failure that makes `replay` exit non-zero).
#[derive(Debug, thiserror::Error)]
#[error("cannot read input {path}: {message}")]
pub struct InputError {
    pub path: String,
    pub message: String,
}

/// One input to read, after expanding directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    Ndjson(PathBuf),
    Json(PathBuf),
}

/// Expands the command line's inputs: directories recursively (sorted, `.json`, `.ndjson` and `.jsonl`
/// files only), `-` as stdin; a named file is NDJSON unless it ends in `.json`.
pub fn expand(args: &[PathBuf]) -> Result<Vec<Input>, InputError> {
    let mut out = Vec::new();
    for a in args {
        if a.as_os_str() == "-" {
            out.push(Input::Stdin);
            continue;
        }
        let meta = std::fs::metadata(a).map_err(|e| InputError { path: a.display().to_string(), message: e.to_string() })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(a, &mut files)?;
            files.sort();
            out.extend(files.into_iter().filter_map(classify));
        } else {
            out.push(classify(a.clone()).unwrap_or(Input::Ndjson(a.clone())));
        }
    }
    Ok(out)
}

fn classify(p: PathBuf) -> Option<Input> {
    match p.extension().and_then(|e| e.to_str()) {
        Some("json") => Some(Input::Json(p)),
        Some("ndjson" | "jsonl") => Some(Input::Ndjson(p)),
        _ => None,
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let err = |e: std::io::Error| InputError { path: dir.display().to_string(), message: e.to_string() };
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let p = entry.map_err(err)?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Total bytes of the file inputs (for progress).
pub fn total_bytes(inputs: &[Input]) -> u64 {
    inputs
        .iter()
        .map(|i| match i {
            Input::Ndjson(p) | Input::Json(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Input::Stdin => 0,
        })
        .sum()
}

/// Calls `f` for every record of every input, in order. `progress` gets the bytes consumed.
pub fn for_each_record(inputs: &[Input], mut f: impl FnMut(Record), mut progress: impl FnMut(u64)) -> Result<(), InputError> {
    for input in inputs {
        match input {
            Input::Stdin => read_ndjson("-", std::io::stdin().lock(), &mut f, &mut progress)?,
            Input::Ndjson(p) => {
                let file = std::fs::File::open(p).map_err(|e| InputError { path: p.display().to_string(), message: e.to_string() })?;
                read_ndjson(&p.display().to_string(), BufReader::new(file), &mut f, &mut progress)?;
            }
            Input::Json(p) => {
                let mut bytes = Vec::new();
                std::fs::File::open(p)
                    .and_then(|mut file| file.read_to_end(&mut bytes))
                    .map_err(|e| InputError { path: p.display().to_string(), message: e.to_string() })?;
                progress(bytes.len() as u64);
                f(Record { source: p.display().to_string(), line: None, bytes });
            }
        }
    }
    Ok(())
}

fn read_ndjson(source: &str, mut r: impl BufRead, f: &mut impl FnMut(Record), progress: &mut impl FnMut(u64)) -> Result<(), InputError> {
    let mut line_no = 0u64;
    loop {
        let mut buf = Vec::new();
        let n = r.read_until(b'\n', &mut buf).map_err(|e| InputError { path: source.to_string(), message: e.to_string() })?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        progress(n as u64);
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        if buf.iter().all(|b| b.is_ascii_whitespace()) {
            continue; // blank lines are not records
        }
        f(Record { source: source.to_string(), line: Some(line_no), bytes: buf });
    }
}
