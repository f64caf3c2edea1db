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

/* SQLite's WAL checksum over @len bytes (a multiple of 8), continuing from
 * (*s1, *s2). Exposed for tests and for writers of test WAL files. */
void sqlenvfs_wal_checksum(gboolean big_endian, const guint8 *data, gsize len, guint32 *s1,
                           guint32 *s2);

G_END_DECLS
