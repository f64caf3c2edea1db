/*
 * util.h — small shared helpers: SQLite handle cleanup, opening databases the
 * project's way, durable file operations, and the injectable clock.
 */
#pragma once

#include <glib.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/types.h>

G_BEGIN_DECLS

static inline void sqlenvfs_sqlite3_close(sqlite3 *db) { sqlite3_close_v2(db); }
static inline void sqlenvfs_sqlite3_finalize(sqlite3_stmt *st) { sqlite3_finalize(st); }
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sqlite3, sqlenvfs_sqlite3_close)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(sqlite3_stmt, sqlenvfs_sqlite3_finalize)

/* The big-endian 4-byte integer at @p: SQLite's file formats (database
 * header, b-tree pages, WAL header and frame headers) store them so. */
static inline guint32
sqlenvfs_be32(const guint8 *p)
{
  return ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8) | p[3];
}

/* Whether @ps is a page size SQLite can have: a power of two from 512 to
 * 65536. */
static inline gboolean
sqlenvfs_page_size_ok(guint32 ps)
{
  return ps >= 512 && ps <= 65536 && (ps & (ps - 1)) == 0;
}

/* The page size a database header states (@hdr: at least its first 18
 * bytes): bytes 16-17, big-endian, where 1 means 65536. Not checked. */
static inline guint32
sqlenvfs_db_page_size(const guint8 *hdr)
{
  guint32 ps = ((guint32)hdr[16] << 8) | hdr[17];
  return ps == 1 ? 65536 : ps;
}

/* The files of one database "<db>", by the suffix SQLite adds to its name:
 * the database itself (""), then what SQLite keeps beside it, its WAL
 * ("-wal"), the WAL index ("-shm") and the rollback journal ("-journal"),
 * always in this order. SQLENVFS_DB_SIDECARS is the list without the
 * database itself. */
#define SQLENVFS_N_DB_FILES 4
extern const char *const sqlenvfs_db_files[SQLENVFS_N_DB_FILES];
#define SQLENVFS_DB_SIDECARS (sqlenvfs_db_files + 1)
#define SQLENVFS_N_DB_SIDECARS (SQLENVFS_N_DB_FILES - 1)

/* "<db>" when the file name @name is "<db>.db" or one of its sidecars
 * ("<db>.db-wal", ...); NULL otherwise (newly allocated). */
char *sqlenvfs_db_of_file(const char *name);

/* How long a connection waits for another process's lock (milliseconds). */
#define SQLENVFS_BUSY_TIMEOUT_MS 10000

typedef enum {
  SQLENVFS_OPEN_READONLY = 1 << 0,   /* SQLITE_OPEN_READONLY; implies NO_CKPT_ON_CLOSE */
  SQLENVFS_OPEN_CREATE = 1 << 1,     /* create the file if missing                     */
  SQLENVFS_OPEN_MUST_EXIST = 1 << 2, /* fail with NOT_FOUND before SQLite              */
  SQLENVFS_OPEN_NO_CKPT_ON_CLOSE = 1 << 3, /* SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE: closing
                                              never checkpoints or deletes the WAL     */
} SqlenvfsOpenFlags;

/* "file:<path>?immutable=1" for sqlenvfs_db_open(), with the path
 * percent-escaped, so that a name holding '?', '#', '%' or a space opens
 * that file. Newly allocated. */
char *sqlenvfs_db_uri_immutable(const char *path);

/* Open @path with a busy timeout and extended result codes. On failure NULL
 * is returned, *error is set, and no handle is leaked.
 *
 * Every connection to a live database (production, which the archiver and
 * the applications share) must leave its WAL alone when it closes: a
 * read-only connection always does; a read-write one passes
 * SQLENVFS_OPEN_NO_CKPT_ON_CLOSE. Only a connection that builds a file of its
 * own (init, a copy being marked) may checkpoint on close. */
sqlite3 *sqlenvfs_db_open(const char *path, SqlenvfsOpenFlags flags,
                          GError **error);

/* The journal mode the header of the database file @path names, read
 * without SQLite: "wal" (bytes 18 and 19 are 2), "delete" for a rollback
 * journal (both 1: what a new connection reports for such a file), or NULL
 * when the file is missing, shorter than a header or not a database
 * (SQLite then decides). The first read of a rollback-journal database by a
 * read-write connection plays a hot journal back into the file: a caller
 * that must not write a database it refuses checks this first. */
const char *sqlenvfs_db_file_journal(const char *path);

/* Run SQL with no result rows. FALSE and *error (naming @path) on failure. */
gboolean sqlenvfs_db_exec(sqlite3 *db, const char *sql, const char *path,
                          GError **error);

/* Run a query returning one integer (first column of first row). */
gboolean sqlenvfs_db_query_int(sqlite3 *db, const char *sql, gint64 *out,
                               const char *path, GError **error);

/* Run a query returning one text value (newly allocated; NULL if no row). */
gboolean sqlenvfs_db_query_text(sqlite3 *db, const char *sql, char **out,
                                const char *path, GError **error);

/* PRAGMA integrity_check (or quick_check when @quick). TRUE when "ok"; else
 * FALSE with SQLENVFS_ERROR_INTEGRITY naming @path and the first problem, or
 * with the SQLite error when the check itself could not run. */
gboolean sqlenvfs_db_check(sqlite3 *db, gboolean quick, const char *path,
                           GError **error);

/* fsync a file by path, and a directory (so that renames inside it are
 * durable). */
gboolean sqlenvfs_fsync_path(const char *path, GError **error);
gboolean sqlenvfs_fsync_dir(const char *dir, GError **error);

/* mkdir -p with mode 0755 (or @mode); each directory it creates is made
 * durable (its parent is fsync'd), so that what is later fsync'd inside it
 * survives a power cut. */
gboolean sqlenvfs_mkdir_p(const char *dir, int mode, GError **error);

/* Write @len bytes to @path atomically: temporary ".tmp-<name>-<pid>" in
 * the same directory (those of writers that died are removed first),
 * fsync, rename, fsync directory. The file gets @mode (less the umask);
 * never written through a symlink. */
gboolean sqlenvfs_write_file_atomic(const char *path, const void *data,
                                    gsize len, int mode, GError **error);

/* As sqlenvfs_write_file_atomic, but not durably (no fsync of the file nor
 * of its directory): for memos that a checksum guards, which a crash may
 * leave old, cut short or missing, and whose loss only costs the next
 * reader time. */
gboolean sqlenvfs_write_file_replace(const char *path, const void *data, gsize len, int mode,
                                     GError **error);

/* File modes. Every file the project writes is no more readable than the
 * production database it comes from: a file gets (at most) the source's
 * permission bits, a directory the same bits plus search (x) wherever
 * they allow reading, so 0600 -> 0700, 0640 -> 0750, 0644 -> 0755. */
int sqlenvfs_mode_dir(int file_mode);

/* The mode a file written from a production database's data gets, given
 * that database's stat @st: its read and write bits, less its group's when
 * its group is not this process's (a new file takes this process's group:
 * the group bits would let another group read the data). */
int sqlenvfs_copy_mode(const struct stat *st);

/* The mode development's database file @dev may keep beside production's
 * @prod (NULL: production has none): its own, less the read permissions
 * production does not give the same people (others' read unless
 * production's others may read; the group's unless production lets the
 * same group, or everyone, read). Only read permissions go: development's
 * application keeps its owner and its write permissions. */
int sqlenvfs_dev_mode(const struct stat *dev, const struct stat *prod);
/* @mode for the open file @fd: less its group's bits when the file's group
 * is not this process's (made in a setgid directory, it took the
 * directory's): the group bits sqlenvfs_copy_mode keeps are for this
 * process's group, production's. */
int sqlenvfs_group_mode(int fd, int mode);

/* Narrow the open file or directory @fd (@path, for the error) to at most
 * @mode's permission bits: never widened, setuid, setgid and sticky kept
 * (a directory's setgid gives its new files their group). */
gboolean sqlenvfs_narrow_fd(int fd, int mode, const char *path, GError **error);
/* The same for the directory @dir, opened without following a symlink. */
gboolean sqlenvfs_narrow_dir(const char *dir, int mode, GError **error);

/* Temporary files. A temporary the project creates is named
 * "<prefix>-<pid>" (SQLite may add "-journal", "-wal" or "-shm"), next to
 * where its result goes, so that the leftovers of a process that died can be
 * told from work in progress. */

/* Create the new file @path for writing with @mode (O_CREAT | O_EXCL |
 * O_NOFOLLOW: never through a symlink, never an existing file; a leftover
 * of this very name, a previous process with the same pid, is removed
 * first, with the -wal, -shm and -journal SQLite may have left beside it).
 * Returns the descriptor, or -1 and *error. */
int sqlenvfs_create_file(const char *path, int mode, GError **error);

/* The start of the name of the temporaries @name is written through,
 * ".tmp-<name>-" (newly allocated): for a name of more than 220 bytes, its
 * first 100 bytes (whole UTF-8 characters), '~' and 16 hexadecimal digits
 * of its SHA-256, so that the temporary's name is not too long for a file
 * name where @name is not. */
char *sqlenvfs_tmp_prefix(const char *name);

/* The temporary this process writes @name through, in @dir:
 * "<dir>/.tmp-<name>-<pid>" (sqlenvfs_tmp_prefix; sqlenvfs_tmp_leftovers
 * finds it once the process is gone). */
char *sqlenvfs_tmp_path(const char *dir, const char *name);

/* The temporaries this process is writing, for a command line to remove
 * when it is interrupted (cli.h, cli_remove_tmp_on_interrupt): a file
 * (with its -journal, -wal and -shm) or a directory tree, each named as
 * above so that it is this process's own. Track one only once this
 * process has created it (or is about to replace whatever holds its
 * name), and untrack it once it is renamed into place or removed. Returns
 * a handle for sqlenvfs_tmp_untrack (which ignores -1), or -1 when there
 * is no room: the temporary is then left by an interruption, as by kill
 * -9, for the next run to remove. Thread-safe. */
int sqlenvfs_tmp_track(const char *path, gboolean is_dir);
void sqlenvfs_tmp_untrack(int handle);

/* Remove every tracked temporary: unlink, never through a symlink (a
 * directory is opened with O_NOFOLLOW, what it holds removed, directories
 * within it likewise to a depth of 8, then it). Only async-signal-safe
 * calls: for a signal handler. */
void sqlenvfs_tmp_remove_tracked(void);

/* The leftovers in @dir of temporaries named "<prefix><anything>-<pid>"
 * (optionally followed by "-journal", "-wal" or "-shm") whose process no
 * longer runs. With @remove they are deleted (regular files, and with
 * @dirs directory trees), relative to a descriptor of @dir opened with
 * O_NOFOLLOW | O_DIRECTORY, so that nothing is ever deleted through a
 * symlink; a symlink or other entry of that name is left alone and named
 * in a warning. The paths found (removed, or found when !@remove) are
 * appended to @found when non-NULL. Returns how many were found; -1 and
 * *error when @dir is a symlink or cannot be read (a missing @dir is 0). */
int sqlenvfs_tmp_leftovers(const char *dir, const char *prefix, gboolean dirs, gboolean remove,
                           GPtrArray *found, GError **error);

/* Open the file of the product's own @path for writing (a lock, a log, an
 * index kept under this name), created with @mode when missing: @flags
 * (O_RDWR, O_WRONLY, O_APPEND) with O_CREAT | O_NOFOLLOW | O_CLOEXEC, never
 * O_TRUNC. Refused (REFUSED naming it, nothing written) when @path is not
 * a regular file or has another name (a hard link: it may be production's
 * database, which a write here would destroy). Returns the descriptor, or
 * -1 and *error. */
int sqlenvfs_open_own_file(const char *path, int flags, int mode, GError **error);

/* Refuse to write or delete @path when it is a symlink: FALSE and a
 * REFUSED error naming @what, the link and its target. A missing @path is
 * fine (TRUE). */
gboolean sqlenvfs_refuse_symlink(const char *path, const char *what, GError **error);

/* Where the symbolic link @path leads, every link on the way resolved
 * (realpath), or, when that cannot be (a dangling link), its target taken
 * from @path's directory; NULL when @path cannot be read as a link. Newly
 * allocated, for messages that name the real place. */
char *sqlenvfs_link_destination(const char *path);

/* The bytes of the regular files in the tree at @path (a file: its size),
 * links not followed; what cannot be read counts nothing. */
guint64 sqlenvfs_tree_bytes(const char *path);

/* Remove a directory tree (best effort is not enough: FALSE on failure). */
gboolean sqlenvfs_rm_rf(const char *path, GError **error);

/* Memory for a large buffer that is written through once (a read window,
 * a summary being built): from 128 KiB on (unless turned off, below), on a
 * 2 MiB boundary and rounded up to it, with transparent huge pages asked
 * for, so that touching it costs a page fault per 2 MiB instead of one per
 * 4 KiB. A first touch of new memory costs 10-15 us a 4 KiB page on some
 * virtual machines, more than reading the same bytes from the page cache,
 * and a 2 MiB page about as much as 12 of them: from 128 KiB on (32 pages)
 * the huge page is cheaper there, and costs at most some 50 us more where
 * faults are cheap. Aborts on lack of memory, as g_malloc() does; free
 * with g_free(). */
gpointer sqlenvfs_alloc_large(gsize len);

/* Whether sqlenvfs_alloc_large() asks for huge pages (it does unless told
 * otherwise). A process that runs for long (the mount, the archiver) turns
 * it off before its threads start: a huge page advised within malloc's
 * heap stays so once the buffer is freed, and every later small block
 * there then keeps 2 MiB resident, so that its memory grows with what it
 * ever freed. */
void sqlenvfs_set_large_pages(gboolean on);

/* @len bytes, rounded up to 2 MiB, on a 2 MiB boundary with huge pages
 * asked for, mapped for the life of the process (never freed): buffers
 * kept and reused, as the mount's reply buffers. Aborts when no memory. */
gpointer sqlenvfs_alloc_kept(gsize len);

/* Grow the block @p (*cap bytes from g_malloc(), sqlenvfs_alloc_large()
 * or this, or NULL and 0) to hold at least @want bytes, keeping its first
 * @used: to twice its size, and from 128 KiB on to whole huge pages from
 * sqlenvfs_alloc_large() (copied there once, then grown by copies that
 * are rare). Returns the new block and sets *cap to its size. */
gpointer sqlenvfs_grow_large(gpointer p, gsize used, gsize want, gsize *cap);

/* zlib's crc32 (gzip's: reflected IEEE polynomial): crc32(crc, data, len),
 * starting from 0, continued with the previous value. */
guint32 sqlenvfs_crc32(guint32 crc, const void *data, gsize len);

/* The crc32 above of the bytes A then B, from crc32(A) = @crc1, crc32(B) =
 * @crc2 and B's length @len, without the bytes (zlib's crc32_combine). */
guint32 sqlenvfs_crc32_combine(guint32 crc1, guint32 crc2, guint64 len);

/* The crc32 above of a whole file, and its size (when @size is not NULL);
 * FALSE and *error naming @path on a read error. */
gboolean sqlenvfs_file_crc32(const char *path, guint32 *crc, goffset *size,
                             GError **error);

/* @arg as one word of a command line a user can paste into a shell: itself
 * when it holds only letters (non-ASCII ones too), digits and _-./:@%+=,,
 * else single-quoted (a database or root name with a blank). Newly
 * allocated. */
char *sqlenvfs_shell_word(const char *arg);

/* Human-readable size, e.g. "12.3 MiB", in plain ASCII (an ASCII space
 * between number and unit, never GLib's no-break space). */
char *sqlenvfs_format_size(guint64 bytes);

/* The clock: wall time in microseconds since the Unix epoch (UTC). Tests
 * inject a fake with sqlenvfs_clock_set(); NULL restores the real clock. */
typedef gint64 (*SqlenvfsClockFunc)(void);
gint64 sqlenvfs_clock_now(void);
void sqlenvfs_clock_set(SqlenvfsClockFunc fn);

/* Tell the service manager that started this process (systemd, through
 * $NOTIFY_SOCKET: sd_notify's protocol) @state, e.g. "READY=1"; nothing
 * when no manager asked. Never fails: the process goes on either way. */
void sqlenvfs_notify_service(const char *state);

G_END_DECLS
