/*
 * walfile.h — reading SQLite's write-ahead log file (format: SQLite file
 * format document, section 4 "The Write-Ahead Log"; SQLite src/wal.c).
 *
 * Byte layout (all integers big-endian):
 *
 *   WAL header, 32 bytes
 *     0  magic 0x377f0682 (checksums over little-endian words) or 0x377f0683
 *        (big-endian words)
 *     4  format version 3007000
 *     8  page size
 *    12  checkpoint sequence number
 *    16  salt-1 (incremented on every WAL restart)
 *    20  salt-2 (random on every WAL restart)
 *    24  checksum-1, 28 checksum-2 over bytes 0..23
 *
 *   Frame i (1-based) at 32 + (i-1) * (24 + page size): 24-byte header then
 *   the page image
 *     0  page number
 *     4  for a commit frame the database size in pages after the commit,
 *        otherwise 0
 *     8  salt-1, 12 salt-2 (copied from the WAL header)
 *    16  checksum-1, 20 checksum-2: cumulative, over the first 8 bytes of this
 *        frame header and the page, seeded with the previous frame's checksum
 *        (the WAL header's for frame 1)
 *
 *   wal-index header (the first bytes of the -shm file; SQLite file format
 *   section 4.5; native byte order, except the salts, copied from the WAL
 *   header as they are there): two copies of 48 bytes, then the checkpoint
 *   information
 *     0  version 3007000, 8 change counter, 12 isInit (nonzero once built),
 *    13  bigEndCksum, 14 page size (u16), 16 mxFrame (the last committed
 *        frame), 20 database size in pages, 24 checksum of frame mxFrame,
 *    32  salt-1, salt-2 of the WAL, 40 checksum-1, checksum-2 over bytes
 *        0..39 (native words)
 *    48  the second copy (a reader uses the header only when both agree)
 *    96  nBackfill: frames copied into the database file by checkpoints
 *
 * Invariants this module relies on and checks:
 *   (1) A frame is valid only if its salts equal the header's and its
 *       checksum matches the cumulative checksum of every frame before it.
 *   (2) A transaction is the run of frames up to and including a valid commit
 *       frame; frames after the last valid commit frame are not committed and
 *       are never reported.
 *   (3) Within one generation (same salts) a committed frame is never
 *       overwritten; a WAL restart changes the salts (salt-1 + 1, new salt-2,
 *       checkpoint sequence + 1) and then overwrites from frame 1.
 */
#pragma once

#include <glib.h>

#include <sqlite3.h>

G_BEGIN_DECLS

#define SQLENVFS_WAL_HEADER_SIZE 32
#define SQLENVFS_WAL_FRAME_HEADER_SIZE 24

typedef struct {
  guint32 page_size;
  guint32 ckpt_seq;
  guint32 salt1, salt2;
  guint32 cksum1, cksum2;
  gboolean big_endian_cksum;
} SqlenvfsWalHeader;

/* Where a WAL reader stands: the next frame to read and the running
 * checksum after the frame before it. Resume a scan from a saved state. */
typedef struct {
  SqlenvfsWalHeader hdr;
  guint32 next_frame; /* 1-based index of the next frame to read */
  guint32 cksum1, cksum2;
} SqlenvfsWalCursor;

/* One committed transaction found in the WAL. */
typedef struct {
  guint32 first_frame;  /* 1-based index of its first frame                  */
  guint32 commit_frame; /* index of its commit frame                          */
  guint32 db_pages;     /* database size in pages after the commit            */
  guint32 cksum1, cksum2; /* cumulative checksum after the commit frame      */
  GArray *pgnos;        /* guint32 page number of each frame, in frame order */
} SqlenvfsWalCommit;

/* Something that can read bytes at an offset (a pread). Returns bytes read
 * (short at end of file) or -1 with *error set. */
typedef gssize (*SqlenvfsPreadFunc)(gpointer src, void *buf, gsize len, goffset off,
                                    GError **error);

/* Read and validate the WAL header. Returns TRUE and fills *hdr when the file
 * has a valid header; FALSE with no error set when it has none (missing,
 * empty, shorter than 32 bytes, bad magic or header checksum: no frames are
 * committed in it); FALSE with *error on a read failure. */
gboolean sqlenvfs_wal_read_header(SqlenvfsPreadFunc read, gpointer src, SqlenvfsWalHeader *hdr,
                                  GError **error);

/* A cursor at frame 1 of the generation described by @hdr. */
void sqlenvfs_wal_cursor_init(SqlenvfsWalCursor *cur, const SqlenvfsWalHeader *hdr);

/* Read the next committed transaction at the cursor. TRUE and fills *commit
 * (caller frees commit->pgnos with sqlenvfs_wal_commit_clear) and advances
 * the cursor past it; FALSE with no error when no further complete, valid
 * transaction is there yet (the cursor does not move); FALSE with *error on a
 * read failure. @max_frame (0: no limit) stops before frames beyond it. */
gboolean sqlenvfs_wal_next_commit(SqlenvfsPreadFunc read, gpointer src, SqlenvfsWalCursor *cur,
                                  guint32 max_frame, SqlenvfsWalCommit *commit, GError **error);
void sqlenvfs_wal_commit_clear(SqlenvfsWalCommit *commit);

/* Byte offset of frame @frame's page image (after its 24-byte header). */
goffset sqlenvfs_wal_page_offset(guint32 page_size, guint32 frame);

/* ------------------------------------------------------------------ */
/* Frame headers                                                        */

typedef struct {
  guint32 pgno;     /* 0 never appears in a valid frame                     */
  guint32 db_pages; /* nonzero: a commit frame                              */
  guint32 salt1, salt2;
  guint32 cksum1, cksum2;
} SqlenvfsWalFrameHeader;

/* Decode a 24-byte frame header. Checks nothing. */
void sqlenvfs_wal_frame_header_parse(const guint8 *b, SqlenvfsWalFrameHeader *fh);

/* Read the header of frame @frame of a WAL whose pages are @page_size.
 * TRUE and *fh; FALSE when the file ends before it; FALSE with *error on a
 * read failure. */
gboolean sqlenvfs_wal_frame_header_read(SqlenvfsPreadFunc read, gpointer src, guint32 page_size,
                                        guint32 frame, SqlenvfsWalFrameHeader *fh,
                                        GError **error);

/* The first frame at or after @cur's next frame (and at most @max_frame,
 * 0: no limit) whose header looks like a commit frame of @cur's generation
 * (its salts, a page number, a database size), judged from frame headers
 * alone and stopping at the first frame of another generation; 0 when
 * there is none yet (or a read fails). Cheap: sqlenvfs_wal_next_commit()
 * with it as max_frame then reads and checks every frame exactly once. */
guint32 sqlenvfs_wal_find_commit_frame(SqlenvfsPreadFunc read, gpointer src,
                                       const SqlenvfsWalCursor *cur, guint32 max_frame);

/* ------------------------------------------------------------------ */
/* The wal-index header                                                 */

#define SQLENVFS_WAL_INDEX_HEADER_SIZE 100 /* both copies and nBackfill */

typedef struct {
  guint32 mx_frame;   /* the last committed frame (0: none)            */
  guint32 n_pages;    /* database size in pages after it               */
  guint32 salt1, salt2;
  guint32 n_backfill; /* frames copied into the database file           */
} SqlenvfsWalIndexHeader;

/* Decode the first SQLENVFS_WAL_INDEX_HEADER_SIZE bytes of a wal-index.
 * TRUE and *wi when the header is usable: built (isInit), of the known
 * version, both copies equal, its checksum right, and nBackfill at most
 * mxFrame; FALSE otherwise (not built yet, or being written: read again). */
gboolean sqlenvfs_wal_index_parse(const guint8 *b, SqlenvfsWalIndexHeader *wi);

/* Read the wal-index header through the shared-memory mapping of @db's
 * main database (a connection that has been in a read transaction on a WAL
 * database), never through a descriptor of our own: closing one would drop
 * the locks SQLite holds on -shm. Tries a few times while the header is
 * being written. FALSE when there is no mapping or no usable header. */
gboolean sqlenvfs_wal_index_read(sqlite3 *db, SqlenvfsWalIndexHeader *wi);

/* ------------------------------------------------------------------ */
/* Reading a -wal file                                                  */

typedef struct _SqlenvfsWalFile SqlenvfsWalFile;

/* Open @path read-only through a private descriptor (it carries no POSIX
 * locks, so closing it never drops SQLite's), with read-ahead into @buf of
 * @buf_size bytes (borrowed: it must outlive the file, and may be shared by
 * files that are never read at the same time). NULL and *error when it
 * cannot be opened. */
SqlenvfsWalFile *sqlenvfs_wal_file_open(const char *path, guint8 *buf, gsize buf_size,
                                        GError **error);
void sqlenvfs_wal_file_free(SqlenvfsWalFile *wf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsWalFile, sqlenvfs_wal_file_free)

/* A SqlenvfsPreadFunc (@src is the SqlenvfsWalFile): from the read-ahead
 * buffer when it holds the range, else one pread of up to the buffer's size
 * (not past the limit), or a direct pread for reads of half the buffer and
 * more. Errors name the path. */
gssize sqlenvfs_wal_file_read(gpointer src, void *buf, gsize len, goffset off, GError **error);

/* The @len bytes at @off in the read-ahead buffer (read into it first when
 * they are not there), without a copy: valid until the next call on @wf.
 * @len is at most half the buffer. NULL with no error when the file ends
 * before @off + @len; NULL with *error on a read failure. */
const guint8 *sqlenvfs_wal_file_view(SqlenvfsWalFile *wf, gsize len, goffset off,
                                     GError **error);

/* Forget what was read ahead (uncommitted frames may be rewritten), and
 * read no further ahead than the WAL header until the next limit: reading
 * the header must not pull megabytes of old frames with it. */
void sqlenvfs_wal_file_invalidate(SqlenvfsWalFile *wf);

/* Read ahead no further than the end of frame @max_frame (the last
 * committed one) of a WAL whose pages are @page_size: the rest of a WAL
 * that was restarted holds old frames nobody needs. */
void sqlenvfs_wal_file_set_limit(SqlenvfsWalFile *wf, guint32 page_size, guint32 max_frame);

/* The inode of the open file (to notice a WAL replaced under us). */
guint64 sqlenvfs_wal_file_ino(const SqlenvfsWalFile *wf);
/* Its path, as given to open(). */
const char *sqlenvfs_wal_file_path(const SqlenvfsWalFile *wf);

/* Read the header of frame @frame straight from the file, bypassing the
 * read-ahead (for a look at frames that may be being written). As
 * sqlenvfs_wal_frame_header_read(). */
gboolean sqlenvfs_wal_file_peek_frame(SqlenvfsWalFile *wf, guint32 page_size, guint32 frame,
                                      SqlenvfsWalFrameHeader *fh, GError **error);

/* SQLite's WAL checksum over @len bytes (a multiple of 8), continuing from
 * (*s1, *s2). Exposed for tests and for writers of test WAL files. */
void sqlenvfs_wal_checksum(gboolean big_endian, const guint8 *data, gsize len, guint32 *s1,
                           guint32 *s2);

/* What SQLite will not read of the WAL at @path when it next recovers it
 * (rebuilds its wal-index: after the last connection closed, or a crash),
 * when that loses a commit. */
typedef struct {
  gboolean no_header; /* frames follow a header that does not hold: none read */
  gint64 size;        /* the file's size                                    */
  guint32 first_bad;  /* the first frame whose checksum fails               */
  guint32 n_after;    /* frames of its generation from there on             */
  guint32 commit_at;  /* the last of them that ends a transaction           */
} SqlenvfsWalTailDamage;

/* TRUE with @out filled when the WAL at @path holds committed frames that
 * SQLite will not read: frames of its generation past the last transaction
 * whose checksums hold, one of which ends a transaction (the checksum chain
 * broke inside committed frames), or a header that does not hold before
 * frames. FALSE when it reads all of it, when what it leaves is a
 * transaction never committed (a writer stopped while writing: nothing is
 * lost), or when the file cannot be read. */
gboolean sqlenvfs_wal_tail_damage(const char *path, SqlenvfsWalTailDamage *out);

G_END_DECLS
