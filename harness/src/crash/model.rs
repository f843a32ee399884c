//! The power-loss model: from the recorded operations, every state of the scratch folder a
//! machine crash could leave on disk, under a documented model of the file system.
//!
//! # The model: ext4, `data=ordered`, delayed allocation, no `auto_da_alloc`
//!
//! - **Metadata** (create, rename, link, unlink, truncate, mkdir, rmdir) reaches the disk in
//!   program order: ext4 commits metadata through one journal, transaction after transaction,
//!   so if a later metadata operation survived, every earlier one did. A crash keeps any prefix
//!   of the metadata operations issued, from the last durable point on.
//! - **Data** written to a file and not yet fsynced may be lost: a crash keeps, of each file's
//!   writes since its last `fsync`/`fdatasync`, any prefix, possibly ending with half of the
//!   next write (a torn write). With delayed allocation the size and the blocks of unsynced
//!   data are written back on their own schedule, independently of the journal, so a rename
//!   can reach the disk before the data of the file it renames.
//! - **Durable points**: `fsync`/`fdatasync` of a file makes that file's data durable *and*
//!   commits the journal, so every metadata operation issued before it is durable too (ext4
//!   commits the whole running transaction). `fsync` of a folder commits the journal (every
//!   metadata operation before it). `sync`/`syncfs` make everything durable.
//!   `sync_file_range` promises nothing and counts for nothing.
//! - The folder's content before the run is durable.
//!
//! This is ext4 *without* its `auto_da_alloc` heuristic (mount option `noauto_da_alloc`), which
//! flushes a file's data before a rename that replaces an existing file commits: with the
//! heuristic, default ext4 is kinder than this model to a save that renames without an fsync;
//! XFS, ext4 `noauto_da_alloc`, and any rename onto a new name get no such help. The model is
//! deliberately the weaker one: a program that survives it survives default ext4.
//!
//! # What the model does not do
//!
//! Data is known by extent, not by byte: a write's bytes are taken from the file's content at
//! the end of the recorded run (the trace keeps no data), so a region written twice shows its
//! last bytes, and a file that no longer exists at the end shows zeros. Writes to one file
//! persist in order (a later write never survives an earlier lost one, except through the
//! half-write). Renames of folders and `fallocate` are not modelled. States are bounded: at
//! most four prefixes of a file's unsynced writes are tried (none, one, all but one, all).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::folder::FolderState;
use super::ops::{Op, OpKind};

/// A state a crash could leave, with how it came about.
#[derive(Debug, Clone)]
pub struct ModelState {
    /// The folder's content.
    pub folder: FolderState,
    /// What happened: the last operation issued and what of it did not reach the disk.
    pub description: String,
    /// Whether every recorded operation had been issued (the program had ended).
    pub complete: bool,
}

/// Bounds on the exploration.
#[derive(Debug, Clone, Copy)]
pub struct ModelLimits {
    /// The most states generated per crash point.
    pub per_point: usize,
    /// The most states in all (after removing duplicates).
    pub total: usize,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self { per_point: 256, total: 4096 }
    }
}

#[derive(Debug, Clone)]
enum Meta {
    Create { name: String, ino: usize },
    Rename { from: String, to: String },
    Link { from: String, to: String },
    Unlink { name: String },
    Truncate { ino: usize, len: u64 },
    Mkdir { name: String },
    Rmdir { name: String },
}

#[derive(Debug, Clone)]
enum Ev {
    Meta(Meta),
    Data { ino: usize, off: u64, len: u64 },
    SyncFile(usize),
    SyncMeta,
    SyncAll,
}

/// What a descriptor refers to.
#[derive(Debug, Clone, Copy)]
enum Target {
    File { ino: usize, pos: u64, append: bool },
    Dir,
}

/// The recorded operations as model events, with the inodes they touch.
struct Events {
    /// (event, index of the operation in the op list).
    evs: Vec<(Ev, usize)>,
    initial_names: BTreeMap<String, usize>,
    initial_dirs: BTreeSet<String>,
    /// Per inode: content at the start (durable), content at the end (if it still had a name).
    initial: Vec<Vec<u8>>,
    last: Vec<Option<Vec<u8>>>,
}

fn build(ops: &[Op], initial: &FolderState, final_state: &FolderState) -> Events {
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut contents = Vec::new();
    for (name, bytes) in &initial.files {
        names.insert(name.clone(), contents.len());
        contents.push(bytes.clone());
    }
    let initial_names = names.clone();
    let mut dirs = initial.dirs.clone();
    let mut sizes: Vec<u64> = contents.iter().map(|c| c.len() as u64).collect();
    let mut fds: HashMap<(u32, i64), Target> = HashMap::new();
    let mut evs = Vec::new();
    let new_ino = |contents: &mut Vec<Vec<u8>>, sizes: &mut Vec<u64>| {
        contents.push(Vec::new());
        sizes.push(0);
        contents.len() - 1
    };
    let lookup = |fds: &HashMap<(u32, i64), Target>, pid: u32, fd: i64| {
        fds.get(&(pid, fd)).copied().or_else(|| fds.iter().find(|((_, f), _)| *f == fd).map(|(_, t)| *t))
    };
    for (index, op) in ops.iter().enumerate() {
        let pid = op.call.pid;
        match &op.kind {
            OpKind::Open { name, create, truncate, append, fd } => {
                if name == "." || dirs.contains(name) {
                    fds.insert((pid, *fd), Target::Dir);
                    continue;
                }
                let ino = match names.get(name) {
                    Some(&ino) => ino,
                    None => {
                        let ino = new_ino(&mut contents, &mut sizes);
                        names.insert(name.clone(), ino);
                        if *create {
                            evs.push((Ev::Meta(Meta::Create { name: name.clone(), ino }), index));
                        }
                        ino
                    }
                };
                if *truncate {
                    sizes[ino] = 0;
                    evs.push((Ev::Meta(Meta::Truncate { ino, len: 0 }), index));
                }
                fds.insert((pid, *fd), Target::File { ino, pos: 0, append: *append });
            }
            OpKind::Write { name, fd, offset, len } => {
                let target = lookup(&fds, pid, *fd).or_else(|| {
                    name.as_ref().and_then(|n| names.get(n)).map(|&ino| Target::File { ino, pos: 0, append: false })
                });
                let Some(Target::File { ino, pos, append }) = target else { continue };
                let off = offset.unwrap_or(if append { sizes[ino] } else { pos });
                if offset.is_none() {
                    fds.insert((pid, *fd), Target::File { ino, pos: off + len, append });
                }
                sizes[ino] = sizes[ino].max(off + len);
                evs.push((Ev::Data { ino, off, len: *len }, index));
            }
            OpKind::Seek { fd, pos } => {
                if let Some(Target::File { ino, append, .. }) = lookup(&fds, pid, *fd) {
                    fds.insert((pid, *fd), Target::File { ino, pos: *pos, append });
                }
            }
            OpKind::Truncate { name, fd, len } => {
                let ino = match fd.and_then(|fd| lookup(&fds, pid, fd)) {
                    Some(Target::File { ino, .. }) => Some(ino),
                    _ => name.as_ref().and_then(|n| names.get(n).copied()),
                };
                if let Some(ino) = ino {
                    sizes[ino] = *len;
                    evs.push((Ev::Meta(Meta::Truncate { ino, len: *len }), index));
                }
            }
            OpKind::Sync { name, fd } => match lookup(&fds, pid, *fd) {
                Some(Target::File { ino, .. }) => evs.push((Ev::SyncFile(ino), index)),
                Some(Target::Dir) => evs.push((Ev::SyncMeta, index)),
                None => match name.as_deref() {
                    Some(n) if n == "." || dirs.contains(n) => evs.push((Ev::SyncMeta, index)),
                    Some(n) => {
                        if let Some(&ino) = names.get(n) {
                            evs.push((Ev::SyncFile(ino), index));
                        }
                    }
                    None => {}
                },
            },
            OpKind::SyncAll => evs.push((Ev::SyncAll, index)),
            OpKind::Rename { from, to } => {
                if let Some(ino) = names.remove(from) {
                    names.insert(to.clone(), ino);
                    evs.push((Ev::Meta(Meta::Rename { from: from.clone(), to: to.clone() }), index));
                }
            }
            OpKind::Link { from, to } => {
                if let Some(&ino) = names.get(from) {
                    names.insert(to.clone(), ino);
                    evs.push((Ev::Meta(Meta::Link { from: from.clone(), to: to.clone() }), index));
                }
            }
            OpKind::Unlink { name } => {
                if names.remove(name).is_some() {
                    evs.push((Ev::Meta(Meta::Unlink { name: name.clone() }), index));
                }
            }
            OpKind::Mkdir { name } => {
                dirs.insert(name.clone());
                evs.push((Ev::Meta(Meta::Mkdir { name: name.clone() }), index));
            }
            OpKind::Rmdir { name } => {
                dirs.remove(name);
                evs.push((Ev::Meta(Meta::Rmdir { name: name.clone() }), index));
            }
            OpKind::Other => {}
        }
    }
    let mut last = vec![None; contents.len()];
    for (name, &ino) in &names {
        if let Some(bytes) = final_state.files.get(name) {
            last[ino] = Some(bytes.clone());
        }
    }
    // `contents` was never written during the walk: it holds each inode's initial bytes.
    Events { evs, initial_names, initial_dirs: initial.dirs.clone(), initial: contents, last }
}

/// One choice of what reached the disk at a crash point.
#[derive(Debug, Clone)]
struct Choice {
    /// Events issued.
    issued: usize,
    /// Metadata events kept (a prefix).
    meta: usize,
    /// Per inode: data events kept (a prefix), and whether half of the next one is kept too.
    data: BTreeMap<usize, (usize, bool)>,
}

impl Events {
    /// Materializes a choice.
    fn apply(&self, choice: &Choice) -> FolderState {
        let mut names = self.initial_names.clone();
        let mut dirs = self.initial_dirs.clone();
        let mut contents = self.initial.clone();
        let mut meta_seen = 0;
        let mut data_seen: HashMap<usize, usize> = HashMap::new();
        for (ev, _) in &self.evs[..choice.issued] {
            match ev {
                Ev::Meta(meta) => {
                    meta_seen += 1;
                    if meta_seen > choice.meta {
                        continue;
                    }
                    match meta {
                        Meta::Create { name, ino } => {
                            names.insert(name.clone(), *ino);
                        }
                        Meta::Rename { from, to } => {
                            if let Some(ino) = names.remove(from) {
                                names.insert(to.clone(), ino);
                            }
                        }
                        Meta::Link { from, to } => {
                            if let Some(&ino) = names.get(from) {
                                names.insert(to.clone(), ino);
                            }
                        }
                        Meta::Unlink { name } => {
                            names.remove(name);
                        }
                        Meta::Truncate { ino, len } => contents[*ino].resize(*len as usize, 0),
                        Meta::Mkdir { name } => {
                            dirs.insert(name.clone());
                        }
                        Meta::Rmdir { name } => {
                            dirs.remove(name);
                        }
                    }
                }
                Ev::Data { ino, off, len } => {
                    let seen = data_seen.entry(*ino).or_insert(0);
                    let k = *seen;
                    *seen += 1;
                    let (keep, half) = choice.data.get(ino).copied().unwrap_or((usize::MAX, false));
                    let len = if k < keep {
                        *len
                    } else if k == keep && half {
                        *len / 2
                    } else {
                        continue;
                    };
                    let (off, len) = (*off as usize, len as usize);
                    let content = &mut contents[*ino];
                    if content.len() < off + len {
                        content.resize(off + len, 0);
                    }
                    let source = self.last[*ino].as_deref().unwrap_or(&[]);
                    for (i, byte) in content.iter_mut().enumerate().skip(off).take(len) {
                        *byte = source.get(i).copied().unwrap_or(0);
                    }
                }
                Ev::SyncFile(_) | Ev::SyncMeta | Ev::SyncAll => {}
            }
        }
        FolderState {
            files: names.into_iter().map(|(name, ino)| (name, contents[ino].clone())).collect(),
            dirs,
            skipped: Vec::new(),
        }
    }

    /// Every choice at crash point `issued` (that many events issued), bounded by `limit`.
    fn choices(&self, issued: usize, limit: usize) -> Vec<Choice> {
        let evs = &self.evs[..issued];
        let barrier = evs.iter().rposition(|(ev, _)| matches!(ev, Ev::SyncFile(_) | Ev::SyncMeta | Ev::SyncAll));
        let meta_count = |evs: &[(Ev, usize)]| evs.iter().filter(|(ev, _)| matches!(ev, Ev::Meta(_))).count();
        let meta_durable = barrier.map_or(0, |b| meta_count(&evs[..b]));
        let meta_issued = meta_count(evs);
        let mut per_ino: BTreeMap<usize, Vec<(usize, bool)>> = BTreeMap::new();
        let inos: BTreeSet<usize> =
            evs.iter().filter_map(|(ev, _)| if let Ev::Data { ino, .. } = ev { Some(*ino) } else { None }).collect();
        for ino in inos {
            let writes: Vec<(usize, u64)> = evs
                .iter()
                .enumerate()
                .filter_map(|(i, (ev, _))| match ev {
                    Ev::Data { ino: x, len, .. } if *x == ino => Some((i, *len)),
                    _ => None,
                })
                .collect();
            let synced_at =
                evs.iter().rposition(|(ev, _)| matches!(ev, Ev::SyncFile(x) if *x == ino) || matches!(ev, Ev::SyncAll));
            let durable = synced_at.map_or(0, |s| writes.iter().filter(|(i, _)| *i < s).count());
            let issued_w = writes.len();
            if durable == issued_w {
                continue;
            }
            let mut keeps: Vec<usize> = (durable..=issued_w).collect();
            if keeps.len() > 4 {
                keeps = vec![durable, durable + 1, issued_w - 1, issued_w];
            }
            let mut options: Vec<(usize, bool)> = Vec::new();
            for &k in &keeps {
                options.push((k, false));
                if k < issued_w && writes[k].1 >= 2 && (k == durable || k + 1 == issued_w) {
                    options.push((k, true));
                }
            }
            per_ino.insert(ino, options);
        }
        let mut choices = Vec::new();
        for meta in meta_durable..=meta_issued {
            let mut partial: Vec<BTreeMap<usize, (usize, bool)>> = vec![BTreeMap::new()];
            for (ino, options) in &per_ino {
                let mut next = Vec::new();
                for base in &partial {
                    for option in options {
                        let mut with = base.clone();
                        with.insert(*ino, *option);
                        next.push(with);
                        if next.len() >= limit {
                            break;
                        }
                    }
                }
                partial = next;
            }
            for data in partial {
                choices.push(Choice { issued, meta, data });
                if choices.len() >= limit {
                    return choices;
                }
            }
        }
        choices
    }

    /// A person's account of a choice: where the crash came, and what did not reach the disk.
    fn describe(&self, choice: &Choice, ops: &[Op]) -> String {
        let step = |index: usize| format!("step {} `{}`", index + 1, ops[index].text);
        let at = match choice.issued {
            0 => "power loss before the first change".to_owned(),
            n if n == self.evs.len() => {
                format!("power loss after the program ended (last change: {})", step(self.evs[n - 1].1))
            }
            n => format!("power loss after {}", step(self.evs[n - 1].1)),
        };
        let mut lost = Vec::new();
        let mut meta_seen = 0;
        let mut data_seen: HashMap<usize, usize> = HashMap::new();
        for (ev, index) in &self.evs[..choice.issued] {
            match ev {
                Ev::Meta(_) => {
                    meta_seen += 1;
                    if meta_seen > choice.meta {
                        lost.push(step(*index));
                    }
                }
                Ev::Data { ino, .. } => {
                    let seen = data_seen.entry(*ino).or_insert(0);
                    let k = *seen;
                    *seen += 1;
                    match choice.data.get(ino) {
                        Some(&(keep, half)) if k == keep && half => lost.push(format!("half of {}", step(*index))),
                        Some(&(keep, _)) if k >= keep => lost.push(step(*index)),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if lost.is_empty() {
            format!("{at}; everything issued reached the disk")
        } else {
            format!("{at}; not on disk: {}", lost.join(", "))
        }
    }
}

/// Every distinct state a power loss during (or right after) the recorded run could leave,
/// first the ones reached earliest. Returns the states and whether the limits cut the list.
pub fn power_loss_states(
    ops: &[Op],
    initial: &FolderState,
    final_state: &FolderState,
    limits: ModelLimits,
) -> (Vec<ModelState>, bool) {
    let events = build(ops, initial, final_state);
    let mut seen: HashMap<[u8; 32], usize> = HashMap::new();
    let mut states: Vec<ModelState> = Vec::new();
    let mut cut = false;
    for issued in 0..=events.evs.len() {
        let complete = issued == events.evs.len();
        let choices = events.choices(issued, limits.per_point);
        cut |= choices.len() >= limits.per_point;
        for choice in choices {
            let folder = events.apply(&choice);
            if let Some(&earlier) = seen.get(&folder.digest()) {
                // The same folder, also reachable after the program ended: it is judged as such
                // (a durable save must not leave it).
                if complete && !states[earlier].complete {
                    states[earlier].complete = true;
                    states[earlier].description = events.describe(&choice, ops);
                }
                continue;
            }
            if states.len() >= limits.total {
                return (states, true);
            }
            seen.insert(folder.digest(), states.len());
            let description = events.describe(&choice, ops);
            states.push(ModelState { folder, description, complete });
        }
    }
    (states, cut)
}

/// The states at the program's end only (every operation issued): what a power loss right
/// after the program ended could leave.
pub fn end_states(
    ops: &[Op],
    initial: &FolderState,
    final_state: &FolderState,
    limits: ModelLimits,
) -> Vec<ModelState> {
    let events = build(ops, initial, final_state);
    let issued = events.evs.len();
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    events
        .choices(issued, limits.per_point)
        .into_iter()
        .filter_map(|choice| {
            let folder = events.apply(&choice);
            seen.insert(folder.digest()).then(|| ModelState {
                description: events.describe(&choice, ops),
                folder,
                complete: true,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crash::ops::scratch_ops;
    use crate::crash::trace::Trace;
    use std::path::Path;

    fn save(fsync_file: bool, fsync_dir: bool) -> Vec<Op> {
        let mut text = String::from(
            "1 openat(AT_FDCWD</s>, \"/s/t\", O_WRONLY|O_CREAT|O_EXCL, 0600) = 3</s/t>\n\
             1 write(3</s/t>, \"\"..., 4) = 4\n",
        );
        if fsync_file {
            text.push_str("1 fsync(3</s/t>) = 0\n");
        }
        text.push_str("1 rename(\"/s/t\", \"/s/f\") = 0\n1 openat(AT_FDCWD</s>, \"/s\", O_RDONLY) = 4</s>\n");
        if fsync_dir {
            text.push_str("1 fsync(4</s>) = 0\n");
        }
        scratch_ops(&Trace::parse(&text), Path::new("/s"))
    }

    fn folder(files: &[(&str, &[u8])]) -> FolderState {
        FolderState {
            files: files.iter().map(|(n, b)| ((*n).to_owned(), b.to_vec())).collect(),
            ..FolderState::default()
        }
    }

    fn contents_of_f(states: &[ModelState]) -> BTreeSet<Option<Vec<u8>>> {
        states.iter().map(|s| s.folder.files.get("f").cloned()).collect()
    }

    #[test]
    fn each_durability_level_leaves_what_the_model_says() {
        let old = folder(&[("f", b"old!")]);
        let new = folder(&[("f", b"new!")]);
        let limits = ModelLimits::default();
        // fsync file + folder: at the end, only the new file.
        let end = end_states(&save(true, true), &old, &new, limits);
        assert_eq!(contents_of_f(&end), [Some(b"new!".to_vec())].into());
        // fsync file only: the rename may be lost (old file, synced temp beside it), never torn.
        let end = end_states(&save(true, false), &old, &new, limits);
        assert_eq!(contents_of_f(&end), [Some(b"old!".to_vec()), Some(b"new!".to_vec())].into());
        // No fsync: the rename may reach the disk before the data: empty or torn.
        let (all, _) = power_loss_states(&save(false, false), &old, &new, limits);
        let seen = contents_of_f(&all);
        assert!(seen.contains(&Some(Vec::new())), "{seen:?}");
        assert!(seen.contains(&Some(b"ne".to_vec())), "{seen:?}");
        let torn = all.iter().find(|s| s.folder.files.get("f").is_some_and(Vec::is_empty)).unwrap();
        assert!(torn.description.contains("not on disk: step 2 `write(<t>"), "{}", torn.description);
    }
}
