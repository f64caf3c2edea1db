/* crashfs — a passthrough FUSE filesystem for tests that forgets, at a
 * simulated power cut, everything that was not made durable.
 *
 *   crashfs STORE MOUNTPOINT [FUSE options]
 *
 * STORE/tree is the backing tree. While mounted, the tree holds the *live*
 * state (what a process sees, as on a real machine whose page cache holds
 * everything); crashfs keeps beside it, in memory, what a power cut would
 * undo:
 *
 *   - per regular file, an undo log: for every write and every size change
 *     since the file's last fsync, the bytes and the size it replaced;
 *     fsync(file) (or fdatasync) empties it;
 *   - per directory, its *durable* entry table (name -> inode) and the list
 *     of entry operations not yet made durable (create, mknod, mkdir,
 *     symlink, link, unlink, rmdir, rename); fsync(dir) applies them.
 *
 * Writing "cut" to the control file /.crashfs (at the mount's root) is a
 * power cut: from that instant every operation fails with EIO (the machine
 * is dead; processes still running are to be killed), the durable state is
 * computed and materialised into STORE/tree.new, which then replaces
 * STORE/tree. The next crashfs mounted on STORE serves exactly what survived.
 *
 *   cut              drop every unsynced write and entry operation
 *   cut random SEED  keep, per file, a random prefix of its unsynced writes
 *                    (in the order they were made) and, per directory, a
 *                    random prefix of its unsynced entry operations;
 *                    SEED makes the choice reproducible
 *   cut subset SEED  as random, but keep each unsynced write of a file
 *                    independently (the kernel writes dirty pages back in
 *                    any order): any subset, applied in the order made
 *
 * Reading /.crashfs shows one line: the generation, the number of cuts, and
 * how many writes and entry operations are pending.
 *
 * What it models (invariants):
 *   (1) Data written to a file survives a cut only if the file was fsync'd
 *       after the write (or, in random mode, if it falls in the kept prefix).
 *       A file's size is data: an extension or a truncation is undone with
 *       the writes.
 *   (2) A directory entry created, removed or renamed survives only if a
 *       directory it belongs to was fsync'd after the operation. fsync of a
 *       file does NOT make its name durable (POSIX; ext4 happens to, other
 *       filesystems do not).
 *   (3) A rename is one atomic operation, as in every journaling filesystem:
 *       when either directory involved is fsync'd it becomes durable in both,
 *       and an fsync of a directory first makes durable every earlier entry
 *       operation of each other directory that one of its operations touches
 *       (the journal commits them in order).
 *   (4) A new file whose name survived but whose data did not is empty (or
 *       holds the kept prefix of its writes), as after a crash on ext4.
 *   (5) Data and entries of different files are independent: any
 *       combination allowed by (1)-(3) can be produced by random and
 *       subset modes.
 *
 * What it does not model:
 *   - torn writes inside one write() call (a write survives whole or not at
 *     all; SQLite and sqlenvfs checksum their pages and records anyway);
 *   - reordering of writes within one file other than by dropping some
 *     (subset mode applies the kept ones in the order they were made);
 *   - metadata other than size and names: mode, owner and times change at
 *     once and survive as they are (sqlenvfs does not rely on them);
 *   - fallocate, copy_file_range and xattrs (not implemented: callers fall
 *     back to plain writes);
 *   - durability of STORE itself: crashfs never fsyncs the backing tree, the
 *     host's own crash is not the subject.
 *
 * Locks and mmap: crashfs has no lock operations, so the kernel keeps POSIX
 * (fcntl) and flock locks locally, which is right for one machine. Files are
 * not opened with direct_io, so SQLite can mmap its -shm file; writes through
 * such a mapping reach crashfs as ordinary writes when the kernel writes the
 * pages back. The kernel's writeback cache is off and O_TRUNC arrives as a
 * size change, so every write and truncation passes through crashfs at once.
 *
 * Inode numbers are the backing tree's (use_ino): stable while mounted and,
 * as a cut materialises surviving files as hard links, across a cut, as on a
 * real filesystem (sqlenvfs compares them to notice a replaced file).
 *
 * Operations are serialised by one mutex: crashfs is for correctness tests,
 * not speed. Assumes it runs as root (it reopens files through
 * /proc/self/fd to undo writes on read-only files).
 */
#define FUSE_USE_VERSION 31


#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <glib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#define CTL_NAME "/.crashfs"

typedef struct Node Node;

/* One write or size change: undoing it sets the size back to old_size,
 * then writes old (the bytes it replaced) at off; redoing it writes new at
 * new_off (a write) or sets the size to new_size (a size change). */
typedef struct {
  off_t off;
  off_t old_size;
  gsize len;
  guint8 *old;
  off_t new_off;
  off_t new_size;  /* a size change: the size; a write: -1 */
  gsize new_len;
  guint8 *new;
} Undo;

/* One entry operation: removes (dir_a, name_a) if dir_a, then sets
 * (dir_b, name_b) -> node_b if dir_b. A rename has both. Listed in the
 * pending lists of both directories; applied once. */
typedef struct {
  guint64 seq;
  gboolean is_applied;
  Node *dir_a;
  char *name_a;
  Node *dir_b;
  char *name_b;
  Node *node_b;
} DirOp;

struct Node {
  guint64 id;
  ino_t ino;
  mode_t type;       /* S_IFREG, S_IFDIR, ... */
  mode_t mode;
  int pfd;           /* O_PATH descriptor: keeps the inode and its number */
  GPtrArray *undo;   /* files: Undo*, oldest first */
  GHashTable *table; /* dirs: durable name -> Node* */
  GPtrArray *pending;/* dirs: DirOp*, oldest first */
  char *made;        /* during a cut: where it was materialised */
};

typedef struct {
  int fd;
  Node *node;
} Handle;

/* Lock order: state.lock only; every callback takes it for its whole run. */
static struct {
  GMutex lock;
  char *store;
  char *tree;
  int tree_fd;
  gboolean is_frozen;
  guint64 seq;
  guint64 n_cuts;
  Node *root;
  GHashTable *by_ino; /* ino_t -> Node* (live inodes and the unlinked ones we hold) */
  GPtrArray *nodes;   /* every Node, by creation */
  GPtrArray *ops;     /* every DirOp (one may sit in two pending lists) */
  char last[256];
} st;

/* ------------------------------------------------------------------ */
/* Nodes                                                               */
/* ------------------------------------------------------------------ */

static Node *
node_new(int pfd, const struct stat *sb)
{
  Node *n = g_new0(Node, 1);
  n->id = st.nodes->len;
  n->ino = sb->st_ino;
  n->type = sb->st_mode & S_IFMT;
  n->mode = sb->st_mode & 07777;
  n->pfd = pfd;
  if (n->type == S_IFDIR) {
    n->table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    n->pending = g_ptr_array_new();
  } else {
    n->undo = g_ptr_array_new();
  }
  g_ptr_array_add(st.nodes, n);
  g_hash_table_insert(st.by_ino, GSIZE_TO_POINTER(n->ino), n);
  return n;
}

/* The node of the inode at @rel (relative to the tree), made on first sight. */
static Node *
node_at(const char *rel, int *err)
{
  struct stat sb;
  if (fstatat(st.tree_fd, rel, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
    *err = -errno;
    return NULL;
  }
  Node *n = g_hash_table_lookup(st.by_ino, GSIZE_TO_POINTER(sb.st_ino));
  if (n)
    return n;
  int pfd = openat(st.tree_fd, rel, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (pfd < 0) {
    *err = -errno;
    return NULL;
  }
  return node_new(pfd, &sb);
}

static const char *
rel_of(const char *path)
{
  return path[1] ? path + 1 : ".";
}

/* Splits "/a/b/c" into the parent's relative path "a/b" and "c". */
static char *
split_parent(const char *path, const char **base)
{
  const char *slash = strrchr(path, '/');
  *base = slash + 1;
  if (slash == path)
    return g_strdup(".");
  return g_strndup(path + 1, (gsize)(slash - path - 1));
}

/* Scans the tree below @dir, making every inode a node whose state is
 * durable. */
static int
scan(Node *dir, const char *rel)
{
  int dfd = openat(st.tree_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return -errno;
  DIR *d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return -errno;
  }
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)) != NULL && rc == 0) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    g_autofree char *child = strcmp(rel, ".") ? g_build_filename(rel, e->d_name, NULL)
                                              : g_strdup(e->d_name);
    int err = 0;
    Node *n = node_at(child, &err);
    if (!n) {
      rc = err;
      break;
    }
    g_hash_table_insert(dir->table, g_strdup(e->d_name), n);
    if (n->type == S_IFDIR && g_hash_table_size(n->table) == 0)
      rc = scan(n, child);
  }
  closedir(d);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Undo logs                                                           */
/* ------------------------------------------------------------------ */

static void
undo_free(gpointer p)
{
  Undo *u = p;
  g_free(u->old);
  g_free(u->new);
  g_free(u);
}

/* Records a write of @len bytes of @data at @off, or a change of the size
 * to @new_size (pass new_size < 0 for a write), with what it replaces, read
 * through @fd. */
static int
undo_record(Node *n, int fd, off_t off, gsize len, const void *data, off_t new_size)
{
  struct stat sb;
  if (fstat(fd, &sb) != 0)
    return -errno;
  Undo *u = g_new0(Undo, 1);
  u->old_size = sb.st_size;
  off_t from, to;
  if (new_size >= 0) {
    from = MIN(new_size, sb.st_size);
    to = sb.st_size;
  } else {
    from = off;
    to = MIN((off_t)(off + (off_t)len), sb.st_size);
  }
  u->off = from;
  u->new_size = new_size;
  u->new_off = off;
  if (new_size < 0) {
    u->new_len = len;
    u->new = g_memdup2(data, len);
  }
  if (to > from) {
    u->len = (gsize)(to - from);
    u->old = g_malloc(u->len);
    ssize_t r = pread(fd, u->old, u->len, from);
    if (r != (ssize_t)u->len) {
      int errsv = r < 0 ? errno : EIO;
      undo_free(u);
      return -errsv;
    }
  }
  g_ptr_array_add(n->undo, u);
  return 0;
}

static void
undo_clear(Node *n)
{
  for (guint i = 0; i < n->undo->len; i++)
    undo_free(n->undo->pdata[i]);
  g_ptr_array_set_size(n->undo, 0);
}

/* Undoes the records of @n from the newest down to index @keep. */
static int
undo_apply(Node *n, guint keep)
{
  if (n->undo->len <= keep)
    return 0;
  g_autofree char *proc = g_strdup_printf("/proc/self/fd/%d", n->pfd);
  int fd = open(proc, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int rc = 0;
  for (guint i = n->undo->len; i-- > keep && rc == 0;) {
    Undo *u = n->undo->pdata[i];
    if (ftruncate(fd, u->old_size) != 0 ||
        (u->len > 0 && pwrite(fd, u->old, u->len, u->off) != (ssize_t)u->len))
      rc = -errno;
  }
  close(fd);
  return rc;
}

/* Undoes every record of @n, then redoes those that @rng keeps (each with
 * probability 1/2), in the order they were made. */
static int
undo_apply_subset(Node *n, GRand *rng, guint *kept)
{
  if (n->undo->len == 0)
    return 0;
  int rc = undo_apply(n, 0);
  if (rc != 0)
    return rc;
  g_autofree char *proc = g_strdup_printf("/proc/self/fd/%d", n->pfd);
  int fd = open(proc, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  for (guint i = 0; i < n->undo->len && rc == 0; i++) {
    Undo *u = n->undo->pdata[i];
    if (!g_rand_boolean(rng))
      continue;
    (*kept)++;
    if (u->new_size >= 0 ? ftruncate(fd, u->new_size) != 0
                         : pwrite(fd, u->new, u->new_len, u->new_off) != (ssize_t)u->new_len)
      rc = -errno;
  }
  close(fd);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Entry operations                                                    */
/* ------------------------------------------------------------------ */

static void
dirop_add(Node *dir_a, const char *name_a, Node *dir_b, const char *name_b, Node *node_b)
{
  DirOp *op = g_new0(DirOp, 1);
  op->seq = ++st.seq;
  op->dir_a = dir_a;
  op->name_a = g_strdup(name_a);
  op->dir_b = dir_b;
  op->name_b = g_strdup(name_b);
  op->node_b = node_b;
  g_ptr_array_add(st.ops, op);
  if (dir_a)
    g_ptr_array_add(dir_a->pending, op);
  if (dir_b && dir_b != dir_a)
    g_ptr_array_add(dir_b->pending, op);
}

static void apply_before(Node *dir, guint64 seq);

static void
dirop_apply(DirOp *op)
{
  if (op->is_applied)
    return;
  /* (3): the journal commits in order: first what the other directory
   * did before this operation. */
  if (op->dir_a)
    apply_before(op->dir_a, op->seq);
  if (op->dir_b)
    apply_before(op->dir_b, op->seq);
  op->is_applied = TRUE;
  if (op->dir_a)
    g_hash_table_remove(op->dir_a->table, op->name_a);
  if (op->dir_b)
    g_hash_table_insert(op->dir_b->table, g_strdup(op->name_b), op->node_b);
}

/* Applies every pending operation of @dir older than @seq. */
static void
apply_before(Node *dir, guint64 seq)
{
  for (guint i = 0; i < dir->pending->len; i++) {
    DirOp *op = dir->pending->pdata[i];
    if (op->seq >= seq)
      break;
    dirop_apply(op);
  }
}

/* Applies the first @keep pending operations of @dir (all: G_MAXUINT) and
 * drops the applied ones from its list. */
static void
apply_prefix(Node *dir, guint keep)
{
  for (guint i = 0; i < dir->pending->len && i < keep; i++)
    dirop_apply(dir->pending->pdata[i]);
  guint j = 0;
  for (guint i = 0; i < dir->pending->len; i++) {
    DirOp *op = dir->pending->pdata[i];
    if (!op->is_applied)
      dir->pending->pdata[j++] = op;
  }
  g_ptr_array_set_size(dir->pending, j);
}

/* ------------------------------------------------------------------ */
/* The cut                                                             */
/* ------------------------------------------------------------------ */

static int
copy_fd(int from, int to)
{
  char buf[1 << 16];
  ssize_t r;
  while ((r = read(from, buf, sizeof buf)) > 0)
    if (write(to, buf, (size_t)r) != r)
      return -errno;
  return r < 0 ? -errno : 0;
}

/* Materialises @dir's durable table under @rel (relative to STORE). */
static int
build(Node *dir, const char *rel)
{
  GHashTableIter it;
  gpointer k, v;
  int sfd = open(st.store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (sfd < 0)
    return -errno;
  int rc = 0;
  g_hash_table_iter_init(&it, dir->table);
  while (rc == 0 && g_hash_table_iter_next(&it, &k, &v)) {
    Node *n = v;
    g_autofree char *path = g_build_filename(rel, (const char *)k, NULL);
    g_autofree char *proc = g_strdup_printf("/proc/self/fd/%d", n->pfd);
    if (n->type == S_IFDIR) {
      if (n->made)
        continue; /* a directory has one name; a second one is dropped */
      n->made = g_strdup(path);
      if (mkdirat(sfd, path, 0700) != 0)
        rc = -errno;
      else
        rc = build(n, path);
      if (rc == 0 && fchmodat(sfd, path, n->mode, 0) != 0)
        rc = -errno;
    } else if (n->type == S_IFREG) {
      if (n->made) {
        if (linkat(sfd, n->made, sfd, path, 0) != 0)
          rc = -errno;
        continue;
      }
      n->made = g_strdup(path);
      if (linkat(AT_FDCWD, proc, sfd, path, AT_SYMLINK_FOLLOW) == 0)
        continue;
      /* unlinked since: copy its content */
      int from = open(proc, O_RDONLY | O_CLOEXEC);
      int to = openat(sfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, n->mode);
      if (from < 0 || to < 0)
        rc = -errno;
      else
        rc = copy_fd(from, to);
      if (from >= 0)
        close(from);
      if (to >= 0)
        close(to);
    } else if (n->type == S_IFLNK) {
      char target[PATH_MAX];
      ssize_t len = readlinkat(n->pfd, "", target, sizeof target - 1);
      if (len < 0) {
        rc = -errno;
        continue;
      }
      target[len] = '\0';
      if (symlinkat(target, sfd, path) != 0)
        rc = -errno;
    } else {
      if (mknodat(sfd, path, n->type | n->mode, 0) != 0)
        rc = -errno;
    }
  }
  close(sfd);
  return rc;
}

static int
rm_tree(const char *path)
{
  g_autofree char *cmd = g_strdup_printf("rm -rf -- '%s'", path);
  return system(cmd) == 0 ? 0 : -EIO;
}

/* The power cut: freeze, keep what is durable (plus, in random mode, a
 * seeded random prefix of what is not), materialise it as STORE/tree. */
typedef enum { CUT_ALL, CUT_PREFIX, CUT_SUBSET } CutMode;

static int
cut(CutMode mode, guint32 seed)
{
  gboolean is_random = mode != CUT_ALL;
  st.is_frozen = TRUE;
  st.n_cuts++;
  GRand *rng = g_rand_new_with_seed(seed);
  guint n_dirops = 0, n_writes = 0, kept_dirops = 0, kept_writes = 0;
  for (guint i = 0; i < st.nodes->len; i++) {
    Node *n = st.nodes->pdata[i];
    if (n->type != S_IFDIR)
      continue;
    guint len = n->pending->len;
    guint keep = is_random && len ? (guint)g_rand_int_range(rng, 0, (gint32)len + 1) : 0;
    n_dirops += len;
    kept_dirops += keep;
    apply_prefix(n, keep);
  }
  int rc = 0;
  for (guint i = 0; i < st.nodes->len && rc == 0; i++) {
    Node *n = st.nodes->pdata[i];
    if (n->type != S_IFREG)
      continue;
    guint len = n->undo->len;
    n_writes += len;
    if (mode == CUT_SUBSET) {
      rc = undo_apply_subset(n, rng, &kept_writes);
      continue;
    }
    guint keep = is_random && len ? (guint)g_rand_int_range(rng, 0, (gint32)len + 1) : 0;
    kept_writes += keep;
    rc = undo_apply(n, keep);
  }
  g_rand_free(rng);
  g_autofree char *next = g_build_filename(st.store, "tree.new", NULL);
  g_autofree char *old = g_build_filename(st.store, "tree.old", NULL);
  rm_tree(next);
  if (rc == 0 && mkdir(next, st.root->mode) != 0)
    rc = -errno;
  if (rc == 0)
    rc = build(st.root, "tree.new");
  if (rc == 0 && (rename(st.tree, old) != 0 || rename(next, st.tree) != 0))
    rc = -errno;
  if (rc == 0)
    rc = rm_tree(old);
  g_snprintf(st.last, sizeof st.last,
             "cut %s seed=%u: kept %u of %u unsynced writes, %u of %u entry operations%s",
             mode == CUT_ALL ? "all" : mode == CUT_PREFIX ? "random" : "subset", seed, kept_writes, n_writes, kept_dirops, n_dirops,
             rc == 0 ? "" : " (FAILED)");
  fprintf(stderr, "crashfs: %s\n", st.last);
  return rc;
}

/* ------------------------------------------------------------------ */
/* FUSE operations                                                     */
/* ------------------------------------------------------------------ */

#define LOCKED() \
  g_autoptr(GMutexLocker) locker_ = g_mutex_locker_new(&st.lock); \
  if (st.is_frozen) \
    return -EIO

/* The control file's handles have fh 0; paths may be NULL (nullpath_ok). */
static gboolean
is_ctl(const char *path, const struct fuse_file_info *fi)
{
  if (fi)
    return fi->fh == 0;
  return path && !strcmp(path, CTL_NAME);
}

static char *
ctl_text(void)
{
  guint n_writes = 0, n_dirops = 0;
  for (guint i = 0; i < st.nodes->len; i++) {
    Node *n = st.nodes->pdata[i];
    n_writes += n->undo ? n->undo->len : 0;
    n_dirops += n->pending ? n->pending->len : 0;
  }
  return g_strdup_printf("frozen=%d cuts=%" G_GUINT64_FORMAT
                         " pending_writes=%u pending_entry_ops=%u last=%s\n",
                         st.is_frozen, st.n_cuts, n_writes, n_dirops, st.last);
}

static int
crashfs_fs_getattr(const char *path, struct stat *sb, struct fuse_file_info *fi)
{
  if (is_ctl(path, fi)) {
    memset(sb, 0, sizeof *sb);
    sb->st_mode = S_IFREG | 0600;
    sb->st_nlink = 1;
    return 0;
  }
  LOCKED();
  int r = fi ? fstat(((Handle *)(uintptr_t)fi->fh)->fd, sb)
             : fstatat(st.tree_fd, rel_of(path), sb, AT_SYMLINK_NOFOLLOW);
  return r == 0 ? 0 : -errno;
}

static int
crashfs_fs_access(const char *path, int mask)
{
  if (is_ctl(path, NULL))
    return 0;
  LOCKED();
  return faccessat(st.tree_fd, rel_of(path), mask, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int
crashfs_fs_readlink(const char *path, char *buf, size_t size)
{
  LOCKED();
  ssize_t len = readlinkat(st.tree_fd, rel_of(path), buf, size - 1);
  if (len < 0)
    return -errno;
  buf[len] = '\0';
  return 0;
}

/* Records a new entry @path whose inode now exists in the tree. */
static int
note_created(const char *path)
{
  const char *base;
  g_autofree char *prel = split_parent(path, &base);
  int err = 0;
  Node *dir = node_at(prel, &err);
  if (!dir)
    return err;
  Node *n = node_at(rel_of(path), &err);
  if (!n)
    return err;
  dirop_add(NULL, NULL, dir, base, n);
  return 0;
}

static int
crashfs_fs_mknod(const char *path, mode_t mode, dev_t rdev)
{
  LOCKED();
  if (mknodat(st.tree_fd, rel_of(path), mode, rdev) != 0)
    return -errno;
  return note_created(path);
}

static int
crashfs_fs_mkdir(const char *path, mode_t mode)
{
  LOCKED();
  if (mkdirat(st.tree_fd, rel_of(path), mode) != 0)
    return -errno;
  return note_created(path);
}

static int
crashfs_fs_symlink(const char *target, const char *path)
{
  LOCKED();
  if (symlinkat(target, st.tree_fd, rel_of(path)) != 0)
    return -errno;
  return note_created(path);
}

static int
crashfs_fs_link(const char *from, const char *to)
{
  LOCKED();
  if (linkat(st.tree_fd, rel_of(from), st.tree_fd, rel_of(to), 0) != 0)
    return -errno;
  return note_created(to);
}

static int
remove_entry(const char *path, int flags)
{
  const char *base;
  g_autofree char *prel = split_parent(path, &base);
  int err = 0;
  Node *dir = node_at(prel, &err);
  if (!dir)
    return err;
  /* make sure the victim has a node: its inode must outlive the name */
  if (!node_at(rel_of(path), &err))
    return err;
  if (unlinkat(st.tree_fd, rel_of(path), flags) != 0)
    return -errno;
  dirop_add(dir, base, NULL, NULL, NULL);
  return 0;
}

static int
crashfs_fs_unlink(const char *path)
{
  LOCKED();
  return remove_entry(path, 0);
}

static int
crashfs_fs_rmdir(const char *path)
{
  LOCKED();
  return remove_entry(path, AT_REMOVEDIR);
}

static int
crashfs_fs_rename(const char *from, const char *to, unsigned int flags)
{
  LOCKED();
  if (flags & ~RENAME_NOREPLACE)
    return -EINVAL;
  const char *base_a, *base_b;
  g_autofree char *prel_a = split_parent(from, &base_a);
  g_autofree char *prel_b = split_parent(to, &base_b);
  int err = 0;
  Node *dir_a = node_at(prel_a, &err);
  Node *dir_b = dir_a ? node_at(prel_b, &err) : NULL;
  Node *n = dir_b ? node_at(rel_of(from), &err) : NULL;
  if (!n)
    return err;
  struct stat sb;
  if (fstatat(st.tree_fd, rel_of(to), &sb, AT_SYMLINK_NOFOLLOW) == 0 && !node_at(rel_of(to), &err))
    return err;
  if (renameat2(st.tree_fd, rel_of(from), st.tree_fd, rel_of(to), flags) != 0)
    return -errno;
  dirop_add(dir_a, base_a, dir_b, base_b, n);
  return 0;
}

static int
crashfs_fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
  LOCKED();
  int r = fi ? fchmod(((Handle *)(uintptr_t)fi->fh)->fd, mode)
             : fchmodat(st.tree_fd, rel_of(path), mode, 0);
  return r == 0 ? 0 : -errno;
}

static int
crashfs_fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
  LOCKED();
  int r = fi ? fchown(((Handle *)(uintptr_t)fi->fh)->fd, uid, gid)
             : fchownat(st.tree_fd, rel_of(path), uid, gid, AT_SYMLINK_NOFOLLOW);
  return r == 0 ? 0 : -errno;
}

static int
crashfs_fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
  LOCKED();
  int r = fi ? futimens(((Handle *)(uintptr_t)fi->fh)->fd, tv)
             : utimensat(st.tree_fd, rel_of(path), tv, AT_SYMLINK_NOFOLLOW);
  return r == 0 ? 0 : -errno;
}

static int
truncate_fd(Node *n, int fd, off_t size)
{
  int rc = undo_record(n, fd, 0, 0, NULL, size);
  if (rc != 0)
    return rc;
  return ftruncate(fd, size) == 0 ? 0 : -errno;
}

static int
crashfs_fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
  if (is_ctl(path, fi))
    return 0;
  LOCKED();
  if (fi) {
    Handle *h = (Handle *)(uintptr_t)fi->fh;
    return truncate_fd(h->node, h->fd, size);
  }
  int err = 0;
  Node *n = node_at(rel_of(path), &err);
  if (!n)
    return err;
  int fd = openat(st.tree_fd, rel_of(path), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  int rc = truncate_fd(n, fd, size);
  close(fd);
  return rc;
}

static int
open_handle(const char *path, struct fuse_file_info *fi, gboolean is_create, mode_t mode)
{
  int err = 0;
  int flags = fi->flags & ~(O_TRUNC | O_NOFOLLOW);
  gboolean is_new = FALSE;
  if (is_create) {
    struct stat sb;
    is_new = fstatat(st.tree_fd, rel_of(path), &sb, AT_SYMLINK_NOFOLLOW) != 0;
  }
  int fd = openat(st.tree_fd, rel_of(path), flags | O_CLOEXEC, mode);
  if (fd < 0)
    return -errno;
  if (is_new && (err = note_created(path)) != 0) {
    close(fd);
    return err;
  }
  Node *n = node_at(rel_of(path), &err);
  if (!n) {
    close(fd);
    return err;
  }
  if ((fi->flags & O_TRUNC) && (err = truncate_fd(n, fd, 0)) != 0) {
    close(fd);
    return err;
  }
  Handle *h = g_new0(Handle, 1);
  h->fd = fd;
  h->node = n;
  fi->fh = (uint64_t)(uintptr_t)h;
  return 0;
}

static int
crashfs_fs_open(const char *path, struct fuse_file_info *fi)
{
  if (is_ctl(path, NULL)) {
    fi->direct_io = 1;
    fi->fh = 0;
    return 0;
  }
  LOCKED();
  return open_handle(path, fi, FALSE, 0);
}

static int
crashfs_fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
  LOCKED();
  return open_handle(path, fi, TRUE, mode);
}

static int
crashfs_fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
  if (is_ctl(path, fi)) {
    g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&st.lock);
    g_autofree char *text = ctl_text();
    size_t len = strlen(text);
    if ((size_t)off >= len)
      return 0;
    size = MIN(size, len - (size_t)off);
    memcpy(buf, text + off, size);
    return (int)size;
  }
  LOCKED();
  ssize_t r = pread(((Handle *)(uintptr_t)fi->fh)->fd, buf, size, off);
  return r < 0 ? -errno : (int)r;
}

static int
ctl_write(const char *buf, size_t size)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&st.lock);
  g_autofree char *cmd = g_strstrip(g_strndup(buf, size));
  g_auto(GStrv) words = g_strsplit_set(cmd, " \t", -1);
  if (g_strv_length(words) >= 1 && !strcmp(words[0], "cut")) {
    if (st.is_frozen)
      return -EIO;
    if (g_strv_length(words) == 1)
      return cut(CUT_ALL, 0) == 0 ? (int)size : -EIO;
    if (g_strv_length(words) == 3 && (!strcmp(words[1], "random") || !strcmp(words[1], "subset")))
      return cut(!strcmp(words[1], "random") ? CUT_PREFIX : CUT_SUBSET,
                 (guint32)g_ascii_strtoull(words[2], NULL, 10)) == 0 ? (int)size : -EIO;
  }
  return -EINVAL;
}

static int
crashfs_fs_write(const char *path, const char *buf, size_t size, off_t off,
                 struct fuse_file_info *fi)
{
  if (is_ctl(path, fi))
    return ctl_write(buf, size);
  LOCKED();
  Handle *h = (Handle *)(uintptr_t)fi->fh;
  int rc = undo_record(h->node, h->fd, off, size, buf, -1);
  if (rc != 0)
    return rc;
  ssize_t r = pwrite(h->fd, buf, size, off);
  return r < 0 ? -errno : (int)r;
}

static int
crashfs_fs_statfs(const char *path, struct statvfs *sv)
{
  (void)path;
  LOCKED();
  return fstatvfs(st.tree_fd, sv) == 0 ? 0 : -errno;
}

static int
crashfs_fs_release(const char *path, struct fuse_file_info *fi)
{
  if (is_ctl(path, fi))
    return 0;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&st.lock);
  Handle *h = (Handle *)(uintptr_t)fi->fh;
  close(h->fd);
  g_free(h);
  return 0;
}

static int
crashfs_fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
  (void)datasync;
  if (is_ctl(path, fi))
    return 0;
  LOCKED();
  undo_clear(((Handle *)(uintptr_t)fi->fh)->node);
  return 0;
}

static int
crashfs_fs_opendir(const char *path, struct fuse_file_info *fi)
{
  LOCKED();
  int err = 0;
  Node *n = node_at(rel_of(path), &err);
  if (!n)
    return err;
  if (n->type != S_IFDIR)
    return -ENOTDIR;
  fi->fh = (uint64_t)(uintptr_t)n;
  return 0;
}

static int
crashfs_fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                   struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
  (void)path;
  (void)off;
  (void)flags;
  LOCKED();
  g_autofree char *proc = g_strdup_printf("/proc/self/fd/%d", ((Node *)(uintptr_t)fi->fh)->pfd);
  int fd = open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return -errno;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (filler(buf, e->d_name, NULL, 0, 0))
      break;
  closedir(d);
  return 0;
}

static int
crashfs_fs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
  (void)path;
  (void)datasync;
  LOCKED();
  apply_prefix((Node *)(uintptr_t)fi->fh, G_MAXUINT);
  return 0;
}

static void *
crashfs_fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
  conn->want &= ~(FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_WRITEBACK_CACHE);
  cfg->hard_remove = 1; /* no .fuse_hidden files: open handles use their fd */
  cfg->nullpath_ok = 1;
  cfg->use_ino = 1; /* the backing inode numbers: stable, as sqlenvfs checks identities */
  cfg->direct_io = 0;
  return NULL;
}

static const struct fuse_operations crashfs_ops = {
  .init = crashfs_fs_init,
  .getattr = crashfs_fs_getattr,
  .access = crashfs_fs_access,
  .readlink = crashfs_fs_readlink,
  .mknod = crashfs_fs_mknod,
  .mkdir = crashfs_fs_mkdir,
  .symlink = crashfs_fs_symlink,
  .link = crashfs_fs_link,
  .unlink = crashfs_fs_unlink,
  .rmdir = crashfs_fs_rmdir,
  .rename = crashfs_fs_rename,
  .chmod = crashfs_fs_chmod,
  .chown = crashfs_fs_chown,
  .utimens = crashfs_fs_utimens,
  .truncate = crashfs_fs_truncate,
  .open = crashfs_fs_open,
  .create = crashfs_fs_create,
  .read = crashfs_fs_read,
  .write = crashfs_fs_write,
  .statfs = crashfs_fs_statfs,
  .release = crashfs_fs_release,
  .fsync = crashfs_fs_fsync,
  .opendir = crashfs_fs_opendir,
  .readdir = crashfs_fs_readdir,
  .fsyncdir = crashfs_fs_fsyncdir,
};

int
main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: crashfs STORE MOUNTPOINT [FUSE options]\n"
                    "  STORE/tree is served; write 'cut' or 'cut random SEED' to\n"
                    "  MOUNTPOINT" CTL_NAME " to simulate a power cut.\n");
    return 2;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  g_mutex_init(&st.lock);
  st.store = realpath(argv[1], NULL);
  if (!st.store) {
    fprintf(stderr, "crashfs: store %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  st.tree = g_build_filename(st.store, "tree", NULL);
  g_autofree char *next = g_build_filename(st.store, "tree.new", NULL);
  g_autofree char *old = g_build_filename(st.store, "tree.old", NULL);
  rm_tree(next);
  rm_tree(old);
  if (mkdir(st.tree, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "crashfs: %s: %s\n", st.tree, strerror(errno));
    return 1;
  }
  st.tree_fd = open(st.tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (st.tree_fd < 0) {
    fprintf(stderr, "crashfs: %s: %s\n", st.tree, strerror(errno));
    return 1;
  }
  st.by_ino = g_hash_table_new(g_direct_hash, g_direct_equal);
  st.nodes = g_ptr_array_new();
  st.ops = g_ptr_array_new();
  int err = 0;
  st.root = node_at(".", &err);
  if (!st.root || (err = scan(st.root, ".")) != 0) {
    fprintf(stderr, "crashfs: scanning %s: %s\n", st.tree, strerror(-err));
    return 1;
  }
  g_strlcpy(st.last, "none", sizeof st.last);

  /* argv for fuse: program, mountpoint, options */
  char **fargv = g_new0(char *, (gsize)argc + 1);
  int fargc = 0;
  fargv[fargc++] = argv[0];
  for (int i = 2; i < argc; i++)
    fargv[fargc++] = argv[i];
  return fuse_main(fargc, fargv, &crashfs_ops, NULL);
}
