/*
 * fs.c — the FUSE low-level operations table and the inode table.
 *
 * Why the low-level API: the tree mixes content that never changes
 * (snapshots, backups, rebuilt pitr states: cached by the kernel for long,
 * read through the page cache) with content that changes under every read
 * (prod/dev images, status, ctl results: never cached). The low-level API
 * sets entry and attribute timeouts per reply, where the high-level one has
 * one setting for the whole mount. It also lets a ctl write be answered from
 * the thread that runs the operation, so writers waiting their turn do not
 * hold the session's worker threads, and an unmount is not held up by them.
 *
 * Inodes: every path the kernel has looked up is an FsNode in Fs.nodes
 * (path -> node); its inode number is its address, as in libfuse's
 * passthrough_ll. A node lives while the kernel holds a lookup count on it
 * (lookup +1, forget -n). The root is a static node with FUSE_ROOT_ID.
 * A node records what its path names (FsWhere) when it was looked up;
 * attributes are routed again on every getattr, so they are never stale.
 *
 * Every callback replies exactly once, with fuse_reply_* or an errno; GErrors
 * become errnos in reply_error() only, which logs the message once.
 */
#include "fs.h"

#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

typedef struct {
  char *path; /* "" for the root */
  FsWhere where;
  guint64 nlookup;
} FsNode;

/* An open file or directory. fi->fh holds its number in Fs.files, never
 * its address: a request that arrives after (or races with) the release of
 * its handle finds nothing and gets EBADF instead of freed memory. Requests
 * hold a reference while they use it. */
typedef struct {
  gint refs;          /* under Fs.files_lock */
  FsKind kind;
  SqlenvfsOp op;      /* FS_CTL_FILE */
  char *text;         /* FS_STATUS: the document rendered at open */
  GBytes *doc;        /* FS_DIFF_FILE: the document served (text is in it) */
  gsize len;
  gint64 text_us;     /* FS_STATUS: when that document was rendered */
  FsHandle *data;     /* data files: serve.c */
  GPtrArray *names;   /* directories: the names at opendir time */
  gint has_written;   /* FS_CTL_FILE: a write came through it (atomic) */
} FsFile;

static FsNode root_node = { .path = "", .where = { .kind = FS_ROOT } };

static Fs *
fs_of(fuse_req_t req)
{
  return fuse_req_userdata(req);
}

static FsNode *
node_of(fuse_ino_t ino)
{
  if (ino == FUSE_ROOT_ID)
    return &root_node;
  return (FsNode *)(uintptr_t)ino;
}

static fuse_ino_t
ino_of(FsNode *node)
{
  return node == &root_node ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)node;
}

static void
node_free(gpointer p)
{
  FsNode *node = p;
  fs_where_clear(&node->where);
  g_free(node->path);
  g_free(node);
}

static void
reply_error(fuse_req_t req, const char *op, const char *path, GError *error)
{
  int e = sqlenvfs_error_to_errno(error);
  /* A missing name is an everyday answer; anything else is worth a line. */
  if (e == ENOENT)
    g_debug("%s /%s: %s", op, path, error->message);
  else
    g_message("%s /%s: %s", op, path, error->message);
  g_error_free(error);
  fuse_reply_err(req, e);
}

static gboolean
is_data_file(FsKind kind)
{
  return kind == FS_LIVE_DB || kind == FS_COPY_DB || kind == FS_PITR_DB;
}

static gboolean
is_dir(FsKind kind)
{
  switch (kind) {
  case FS_ROOT:
  case FS_ENV_DIR:
  case FS_STORE_DIR:
  case FS_COPY_DIR:
  case FS_PITR_DIR:
  case FS_PITR_TIME:
  case FS_DIFF_DIR:
  case FS_DIFF_FROM:
  case FS_DIFF_TO:
  case FS_CTL_DIR:
    return TRUE;
  default:
    return FALSE;
  }
}

/* Permission for a caller other than the mounting user (only possible with
 * -o allow_other; the kernel keeps everyone else out otherwise, and the
 * mount does not ask the kernel to check modes, so this is the check). A
 * node may be read, listed or searched only by who could do the same in
 * the root itself (tree.c, fs_tree_may_access): the file's own mode and
 * every directory above it. Writing is decided elsewhere (EROFS for data
 * files, the mounting user only for ctl/). */
static gboolean
may_access(fuse_req_t req, Fs *fs, const FsWhere *where, int mask)
{
  const struct fuse_ctx *ctx = fuse_req_ctx(req);
  FsCaller caller = { .uid = ctx->uid, .gid = ctx->gid };
  int n;

  if (ctx->uid == 0 || ctx->uid == fs->uid)
    return TRUE;
  n = fuse_req_getgroups(req, G_N_ELEMENTS(caller.groups), caller.groups);
  /* More groups than fit: the first ones only (a stricter answer). */
  caller.n_groups = n < 0 ? 0 : MIN(n, (int)G_N_ELEMENTS(caller.groups));
  return fs_tree_may_access(fs, where, &caller, mask);
}

static gboolean
may_write_ctl(fuse_req_t req, Fs *fs)
{
  const struct fuse_ctx *ctx = fuse_req_ctx(req);
  return ctx->uid == 0 || ctx->uid == fs->uid;
}

/* Route a node's path again for fresh attributes. */
static gboolean
node_attr(fuse_req_t req, Fs *fs, FsNode *node, FsAttr *attr, GError **error)
{
  FsWhere w = { 0 };
  gboolean ok = fs_tree_resolve(fs, node->path, (guint32)fuse_req_ctx(req)->pid, &w, attr, error);
  fs_where_clear(&w);
  if (ok) {
    attr->st.st_ino = ino_of(node);
    if (node->where.kind == FS_LIVE_DB) {
      guint64 pinned = fs_serve_live_open_size(fs, node->where.env, node->where.db);
      if ((guint64)attr->st.st_size < pinned)
        attr->st.st_size = (off_t)pinned;
    }
  }
  return ok;
}

static void
file_free(Fs *fs, FsFile *f)
{
  if (f->data)
    fs_serve_release(fs, f->data);
  if (f->names)
    g_ptr_array_unref(f->names);
  if (f->doc != NULL)
    g_bytes_unref(f->doc);
  else
    g_free(f->text);
  g_free(f);
}

/* Register @f (one reference, the table's) and return its number. */
static uint64_t
file_add(Fs *fs, FsFile *f)
{
  uint64_t id;
  f->refs = 1;
  g_mutex_lock(&fs->files_lock);
  id = ++fs->next_file;
  g_hash_table_insert(fs->files, GSIZE_TO_POINTER(id), f);
  g_mutex_unlock(&fs->files_lock);
  return id;
}

/* The open file numbered @fh with a reference for the caller, or NULL. */
static FsFile *
file_get(Fs *fs, uint64_t fh)
{
  FsFile *f;
  g_mutex_lock(&fs->files_lock);
  f = g_hash_table_lookup(fs->files, GSIZE_TO_POINTER(fh));
  if (f != NULL)
    f->refs++;
  g_mutex_unlock(&fs->files_lock);
  return f;
}

static void
file_put(Fs *fs, FsFile *f)
{
  gboolean last;
  g_mutex_lock(&fs->files_lock);
  last = --f->refs == 0;
  g_mutex_unlock(&fs->files_lock);
  if (last)
    file_free(fs, f);
}

/* Drop the table's reference (release, or an open whose reply failed). */
static void
file_remove(Fs *fs, uint64_t fh)
{
  FsFile *f;
  g_mutex_lock(&fs->files_lock);
  f = g_hash_table_lookup(fs->files, GSIZE_TO_POINTER(fh));
  if (f != NULL)
    g_hash_table_remove(fs->files, GSIZE_TO_POINTER(fh));
  g_mutex_unlock(&fs->files_lock);
  if (f != NULL)
    file_put(fs, f);
}

static void
fs_init(void *userdata, struct fuse_conn_info *conn)
{
  fs_mount_init_conn(userdata, conn);
  /* Stored files are replied to by splicing from their descriptor (no copy
   * through our memory); libfuse negotiates 1 MiB requests (max_pages). */
  if (conn->capable & FUSE_CAP_SPLICE_WRITE)
    conn->want |= FUSE_CAP_SPLICE_WRITE;
  if (conn->capable & FUSE_CAP_SPLICE_MOVE)
    conn->want |= FUSE_CAP_SPLICE_MOVE;
  /* ctl writes must reach the daemon at once, never through a cache. */
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  g_info("FUSE protocol %u.%u, max_write %u, max_readahead %u", conn->proto_major,
         conn->proto_minor, conn->max_write, conn->max_readahead);
}

static void
fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
  Fs *fs = fs_of(req);
  FsNode *pnode = node_of(parent);
  g_autofree char *path = NULL;
  GError *error = NULL;
  FsWhere w = { 0 };
  FsAttr attr;
  FsNode *node;
  struct fuse_entry_param e = { 0 };

  if (!is_dir(pnode->where.kind)) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  if (!may_access(req, fs, &pnode->where, X_OK)) {
    fuse_reply_err(req, EACCES);
    return;
  }
  path = *pnode->path ? g_strconcat(pnode->path, "/", name, NULL) : g_strdup(name);
  if (!fs_tree_resolve(fs, path, (guint32)fuse_req_ctx(req)->pid, &w, &attr, &error)) {
    if (attr.negative_timeout > 0 && sqlenvfs_error_to_errno(error) == ENOENT) {
      /* A negative entry (ino 0): the kernel answers ENOENT itself for a
       * while, as libfuse's passthrough_hp does. */
      g_debug("lookup /%s: %s (remembered for %.0f s)", path, error->message,
              attr.negative_timeout);
      g_error_free(error);
      e.ino = 0;
      e.entry_timeout = attr.negative_timeout;
      fuse_reply_entry(req, &e);
      return;
    }
    reply_error(req, "lookup", path, error);
    return;
  }

  g_mutex_lock(&fs->lock);
  node = g_hash_table_lookup(fs->nodes, path);
  if (node == NULL) {
    node = g_new0(FsNode, 1);
    node->path = g_strdup(path);
    node->where = w;
    memset(&w, 0, sizeof w);
    g_hash_table_insert(fs->nodes, node->path, node);
  }
  node->nlookup++;
  g_mutex_unlock(&fs->lock);
  fs_where_clear(&w);

  attr.st.st_ino = ino_of(node);
  if (node->where.kind == FS_LIVE_DB) {
    guint64 pinned = fs_serve_live_open_size(fs, node->where.env, node->where.db);
    if ((guint64)attr.st.st_size < pinned)
      attr.st.st_size = (off_t)pinned;
  }
  e.ino = ino_of(node);
  e.attr = attr.st;
  e.attr_timeout = attr.attr_timeout;
  e.entry_timeout = attr.entry_timeout;
  fuse_reply_entry(req, &e);
}

static void
forget_one(Fs *fs, fuse_ino_t ino, uint64_t n)
{
  FsNode *node = node_of(ino);
  if (node == &root_node)
    return;
  g_mutex_lock(&fs->lock);
  g_assert(node->nlookup >= n);
  node->nlookup -= n;
  if (node->nlookup == 0)
    g_hash_table_remove(fs->nodes, node->path); /* frees it */
  g_mutex_unlock(&fs->lock);
}

static void
fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
  forget_one(fs_of(req), ino, nlookup);
  fuse_reply_none(req);
}

static void
fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
  Fs *fs = fs_of(req);
  for (size_t i = 0; i < count; i++)
    forget_one(fs, forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

static void
fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  Fs *fs = fs_of(req);
  FsNode *node = node_of(ino);
  GError *error = NULL;
  FsAttr attr;

  if (!node_attr(req, fs, node, &attr, &error)) {
    reply_error(req, "getattr", node->path, error);
    return;
  }
  if (fi != NULL && fi->fh != 0 && is_data_file(node->where.kind)) {
    FsFile *f = file_get(fs, fi->fh);
    if (f != NULL && f->data != NULL)
      fs_serve_handle_stat(f->data, &attr.st);
    if (f != NULL)
      file_put(fs, f);
  } else if (fi != NULL && fi->fh != 0 && node->where.kind == FS_STATUS) {
    /* fstat of an open status: the document this handle reads. */
    FsFile *f = file_get(fs, fi->fh);
    if (f != NULL && f->kind == FS_STATUS && f->text != NULL) {
      attr.st.st_size = (off_t)f->len;
      attr.st.st_blocks = (blkcnt_t)((f->len + 511) / 512);
      fs_tree_set_times(&attr.st, f->text_us);
    }
    if (f != NULL)
      file_put(fs, f);
  }
  fuse_reply_attr(req, &attr.st, attr.attr_timeout);
}

static void
fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *st, int to_set,
           struct fuse_file_info *fi)
{
  Fs *fs = fs_of(req);
  FsNode *node = node_of(ino);
  GError *error = NULL;
  FsAttr attr;
  (void)fi;

  /* A shell's `echo 1 > ctl/op` truncates first: accept that, and only that. */
  if (node->where.kind != FS_CTL_FILE || to_set != FUSE_SET_ATTR_SIZE || st->st_size != 0) {
    fuse_reply_err(req, EROFS);
    return;
  }
  if (!may_write_ctl(req, fs)) {
    fuse_reply_err(req, EACCES);
    return;
  }
  if (!node_attr(req, fs, node, &attr, &error)) {
    reply_error(req, "truncate", node->path, error);
    return;
  }
  fuse_reply_attr(req, &attr.st, attr.attr_timeout);
}

static void
fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
  Fs *fs = fs_of(req);
  FsNode *node = node_of(ino);
  GError *error = NULL;
  g_autofree char *target = NULL;

  if (node->where.kind != FS_PITR_LINK) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  target = fs_tree_readlink(fs, &node->where, (guint32)fuse_req_ctx(req)->pid, &error);
  if (target == NULL) {
    reply_error(req, "readlink", node->path, error);
    return;
  }
  fuse_reply_readlink(req, target);
}

static void
fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  Fs *fs = fs_of(req);
  FsNode *node = node_of(ino);
  GError *error = NULL;
  FsFile *d;
  GPtrArray *names;

  if (!is_dir(node->where.kind)) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  if (!may_access(req, fs, &node->where, R_OK)) {
    fuse_reply_err(req, EACCES);
    return;
  }
  names = fs_tree_list(fs, &node->where, &error);
  if (names == NULL) {
    reply_error(req, "opendir", node->path, error);
    return;
  }
  d = g_new0(FsFile, 1);
  d->kind = node->where.kind;
  d->names = names;
  fi->fh = file_add(fs, d);
  if (fuse_reply_open(req, fi) == -ENOENT)
    file_remove(fs, fi->fh); /* the opener went away (interrupted) */
}

static void
fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
  Fs *fs = fs_of(req);
  FsFile *d = file_get(fs, fi->fh);
  g_autofree char *buf = NULL;
  size_t used = 0;

  if (d == NULL || d->names == NULL) {
    if (d)
      file_put(fs, d);
    fuse_reply_err(req, EBADF);
    return;
  }
  buf = g_malloc(size);
  /* Offsets: 0 ".", 1 "..", 2 + i names[i]; an entry's offset is the next one's index. */
  for (off_t i = off; i < (off_t)d->names->len + 2; i++) {
    struct stat st = { 0 };
    const char *name;
    size_t n;
    if (i == 0) {
      name = ".";
      st.st_mode = S_IFDIR;
      st.st_ino = ino;
    } else if (i == 1) {
      name = "..";
      st.st_mode = S_IFDIR;
      st.st_ino = FUSE_ROOT_ID;
    } else {
      name = g_ptr_array_index(d->names, i - 2);
      st.st_ino = (ino_t)g_str_hash(name) | 2; /* shown by readdir only; lookup gives the real one */
    }
    n = fuse_add_direntry(req, buf + used, size - used, name, &st, i + 1);
    if (n > size - used)
      break;
    used += n;
  }
  fuse_reply_buf(req, buf, used);
  file_put(fs, d);
}

static void
fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void)ino;
  file_remove(fs_of(req), fi->fh);
  fuse_reply_err(req, 0);
}

static void
fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  Fs *fs = fs_of(req);
  FsNode *node = node_of(ino);
  gboolean writing = (fi->flags & O_ACCMODE) != O_RDONLY;
  GError *error = NULL;
  FsFile *f;
  FsAttr attr;

  if (is_dir(node->where.kind)) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  if (node->where.kind == FS_PITR_LINK) {
    fuse_reply_err(req, ELOOP);
    return;
  }
  if (writing && node->where.kind != FS_CTL_FILE) {
    fuse_reply_err(req, EROFS);
    return;
  }
  if (writing && !may_write_ctl(req, fs)) {
    fuse_reply_err(req, EACCES);
    return;
  }
  if (!node_attr(req, fs, node, &attr, &error)) {
    reply_error(req, "open", node->path, error);
    return;
  }
  if (!writing && !may_access(req, fs, &node->where, R_OK)) {
    fuse_reply_err(req, EACCES);
    return;
  }

  f = g_new0(FsFile, 1);
  f->kind = node->where.kind;
  switch (node->where.kind) {
  case FS_CTL_FILE:
    f->op = node->where.op;
    fi->direct_io = 1;
    fi->nonseekable = 0;
    break;
  case FS_STATUS:
    /* The document whose size the lookup or getattr just before showed;
     * direct_io so that reads come here, never from a stale page cache. */
    f->text = fs_status_snapshot(fs, (guint32)fuse_req_ctx(req)->pid, &f->len, &f->text_us);
    fi->direct_io = 1;
    break;
  case FS_DIFF_FILE: {
    /* The document the lookup just before made (diff.c), whole, in
     * memory; direct_io, as it is made again for a later time. */
    gsize len;
    f->doc = fs_diff_render(fs, &node->where, &error);
    if (f->doc == NULL) {
      file_free(fs, f);
      reply_error(req, "open", node->path, error);
      return;
    }
    f->text = (char *)g_bytes_get_data(f->doc, &len);
    f->len = len;
    fi->direct_io = 1;
    break;
  }
  case FS_METRICS:
    /* As status: the document whose size the lookup just before showed. */
    f->text = fs_doc_snapshot(fs, fs->metrics, (guint32)fuse_req_ctx(req)->pid, &f->len, NULL);
    fi->direct_io = 1;
    break;
  default:
    if (!fs_remote_prepare(fs, &node->where, &error)) {
      file_free(fs, f);
      reply_error(req, "open", node->path, error);
      return;
    }
    f->data = fs_serve_open(fs, &node->where, (guint32)fuse_req_ctx(req)->pid, fi, &error);
    if (f->data == NULL) {
      file_free(fs, f);
      reply_error(req, "open", node->path, error);
      return;
    }
    break;
  }
  fi->fh = file_add(fs, f);
  if (fuse_reply_open(req, fi) == -ENOENT)
    file_remove(fs, fi->fh); /* the opener went away (interrupted) */
}

static void
reply_text(fuse_req_t req, const char *text, gsize len, size_t size, off_t off)
{
  if (off < 0 || (gsize)off >= len)
    fuse_reply_buf(req, NULL, 0);
  else
    fuse_reply_buf(req, text + off, MIN(size, len - (gsize)off));
}

static void
fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
  Fs *fs = fs_of(req);
  FsFile *f = file_get(fs, fi->fh);
  (void)ino;

  if (f == NULL) {
    fuse_reply_err(req, EBADF);
    return;
  }
  switch (f->kind) {
  case FS_CTL_FILE: {
    g_autofree char *line = fs_ctl_read(fs->ctl, f->op);
    reply_text(req, line, strlen(line), size, off);
    break;
  }
  case FS_STATUS:
  case FS_DIFF_FILE:
  case FS_METRICS:
    reply_text(req, f->text, f->len, size, off);
    break;
  default:
    fs_serve_read(fs, req, f->data, size, off);
    break;
  }
  file_put(fs, f);
}

/* Only blanks and line endings (or nothing). */
static gboolean
is_blank(const char *buf, size_t size)
{
  for (size_t i = 0; i < size; i++)
    if (!g_ascii_isspace(buf[i]))
      return FALSE;
  return TRUE;
}

static void
fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
         struct fuse_file_info *fi)
{
  Fs *fs = fs_of(req);
  FsFile *f = file_get(fs, fi->fh);
  (void)ino;
  (void)off; /* every write is one whole request, wherever it lands */

  if (f == NULL)
    fuse_reply_err(req, EBADF);
  else if (f->kind != FS_CTL_FILE)
    fuse_reply_err(req, EROFS);
  else if (!g_atomic_int_exchange(&f->has_written, 1))
    fs_ctl_write(fs->ctl, req, f->op, buf, size);
  else if (is_blank(buf, size))
    /* The end of the line written before through this open file, by a
     * program that writes a line in pieces (an unbuffered file): not an
     * empty line of its own, which would run the operation on every
     * database (a real prune after "dry-run"). */
    fuse_reply_write(req, size);
  else
    fs_ctl_write(fs->ctl, req, f->op, buf, size);
  if (f != NULL)
    file_put(fs, f);
}

static void
fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void)ino;
  (void)fi;
  /* Nothing is buffered: a ctl operation runs inside its write. */
  fuse_reply_err(req, 0);
}

static void
fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  (void)ino;
  file_remove(fs_of(req), fi->fh);
  fuse_reply_err(req, 0);
}

static void
fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
  (void)ino;
  (void)datasync;
  (void)fi;
  fuse_reply_err(req, 0);
}

static void
fs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
  Fs *fs = fs_of(req);
  FsNode *node = node_of(ino);
  GError *error = NULL;
  FsAttr attr;

  if ((mask & W_OK) && node->where.kind != FS_CTL_FILE) {
    fuse_reply_err(req, EROFS);
    return;
  }
  if ((mask & W_OK) && !may_write_ctl(req, fs)) {
    fuse_reply_err(req, EACCES);
    return;
  }
  if (!node_attr(req, fs, node, &attr, &error)) {
    reply_error(req, "access", node->path, error);
    return;
  }
  if ((mask & (R_OK | X_OK)) && !may_access(req, fs, &node->where, mask & (R_OK | X_OK))) {
    fuse_reply_err(req, EACCES);
    return;
  }
  fuse_reply_err(req, 0);
}

static void
fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
  Fs *fs = fs_of(req);
  struct statvfs sv;
  (void)ino;
  /* Space is the root's: that is where backups and the cache go. */
  if (statvfs(sqlenvfs_root_dir(fs->root), &sv) != 0)
    memset(&sv, 0, sizeof sv);
  sv.f_namemax = 255;
  fuse_reply_statfs(req, &sv);
}

/* Everything that would change the tree: the data is read-only. */
static void
fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
  (void)parent, (void)name, (void)mode, (void)rdev;
  fuse_reply_err(req, EROFS);
}

static void
fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
  (void)parent, (void)name, (void)mode;
  fuse_reply_err(req, EROFS);
}

static void
fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
  (void)parent, (void)name;
  fuse_reply_err(req, EROFS);
}

static void
fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
  (void)link, (void)parent, (void)name;
  fuse_reply_err(req, EROFS);
}

static void
fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
          const char *newname, unsigned int flags)
{
  (void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
  fuse_reply_err(req, EROFS);
}

static void
fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
  (void)ino, (void)newparent, (void)newname;
  fuse_reply_err(req, EROFS);
}

static void
fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
          struct fuse_file_info *fi)
{
  (void)parent, (void)name, (void)mode, (void)fi;
  fuse_reply_err(req, EROFS);
}

static void
fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
            int flags)
{
  (void)ino, (void)name, (void)value, (void)size, (void)flags;
  fuse_reply_err(req, EROFS);
}

static void
fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
             struct fuse_file_info *fi)
{
  (void)ino, (void)mode, (void)offset, (void)length, (void)fi;
  fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops sqlenvfs_fs_ops = {
  .init = fs_init,
  .lookup = fs_lookup,
  .forget = fs_forget,
  .forget_multi = fs_forget_multi,
  .getattr = fs_getattr,
  .setattr = fs_setattr,
  .readlink = fs_readlink,
  .mknod = fs_mknod,
  .mkdir = fs_mkdir,
  .unlink = fs_unlink,
  .rmdir = fs_unlink,
  .symlink = fs_symlink,
  .rename = fs_rename,
  .link = fs_link,
  .open = fs_open,
  .read = fs_read,
  .write = fs_write,
  .flush = fs_flush,
  .release = fs_release,
  .fsync = fs_fsync,
  .opendir = fs_opendir,
  .readdir = fs_readdir,
  .releasedir = fs_releasedir,
  .statfs = fs_statfs,
  .setxattr = fs_setxattr,
  .access = fs_access,
  .create = fs_create,
  .fallocate = fs_fallocate,
};

void
fs_nodes_init(Fs *fs)
{
  g_mutex_init(&fs->lock);
  g_mutex_init(&fs->live_lock);
  g_mutex_init(&fs->files_lock);
  fs->status = fs_status_cache_new(fs_status_render);
  fs->metrics = fs_status_cache_new(fs_metrics_text);
  fs->diffs = fs_diff_cache_new();
  fs->files = g_hash_table_new(g_direct_hash, g_direct_equal);
  fs->nodes = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, node_free);
}

void
fs_release_open_files(Fs *fs)
{
  if (fs->files != NULL) {
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, fs->files);
    while (g_hash_table_iter_next(&it, &k, &v)) {
      g_hash_table_iter_steal(&it);
      file_put(fs, v);
    }
    g_clear_pointer(&fs->files, g_hash_table_destroy);
  }
}

void
fs_nodes_clear(Fs *fs)
{
  fs_release_open_files(fs);
  g_clear_pointer(&fs->nodes, g_hash_table_destroy);
  g_clear_pointer(&fs->status, fs_status_cache_free);
  g_clear_pointer(&fs->metrics, fs_status_cache_free);
  g_clear_pointer(&fs->diffs, fs_diff_cache_free);
  g_mutex_clear(&fs->lock);
  g_mutex_clear(&fs->live_lock);
  g_mutex_clear(&fs->files_lock);
}
