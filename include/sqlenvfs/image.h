/*
 * image.h — a database file composed of pages from several places.
 *
 * Every database state this project serves or writes is an image: a base
 * file (the live database file, a snapshot, a backup) overlaid with newer
 * page versions taken from elsewhere (frames of the live WAL, pages of the
 * WAL archive), cut to a size in pages. A consistent view of production, a
 * point-in-time rebuild and a hot backup are the same operation over
 * different sources, so there is one piece of code for it.
 *
 * Invariants:
 *   (1) Reading byte range [off, off+len) returns, for each page, the bytes
 *       of its overlay entry if one is set, else the base's bytes at the same
 *       offset; bytes at or past size (n_pages * page_size) do not exist.
 *   (2) An overlay entry set later replaces an earlier one for the same page
 *       (callers add versions oldest first; the last version wins).
 *   (3) With SQLENVFS_IMAGE_ROLLBACK_HEADER, bytes 18 and 19 of page 1 read
 *       as 1 (rollback journal) instead of 2 (WAL), so that SQLite can open
 *       the image on a read-only filesystem without -wal/-shm files.
 *   (4) The image does not own the data of its sources; it owns the source
 *       handles given with a destroy function.
 *   (5) An image whose base check is deferred (sqlenvfs_image_defer_base_check)
 *       gives no byte to anyone before that check passed: reads fail, and
 *       sqlenvfs_image_write_to_fd fails after writing unless the check of
 *       the base's bytes it read passes.
 *
 * Memory: one 8-byte slot per page up to the highest overlaid page number.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/walfile.h"

G_BEGIN_DECLS

typedef struct _SqlenvfsImage SqlenvfsImage;

typedef enum {
  SQLENVFS_IMAGE_ROLLBACK_HEADER = 1 << 0,
} SqlenvfsImageReadFlags;

/* An image of @n_pages pages of @page_size bytes over @base (read with
 * @base_read; @base_free, if non-NULL, is called on it when the image is
 * freed). */
SqlenvfsImage *sqlenvfs_image_new(guint32 page_size, guint32 n_pages, SqlenvfsPreadFunc base_read,
                                  gpointer base, GDestroyNotify base_free);
void sqlenvfs_image_free(SqlenvfsImage *img);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsImage, sqlenvfs_image_free)

/* Register another source of page images; returns its id (1..65535). */
guint sqlenvfs_image_add_source(SqlenvfsImage *img, SqlenvfsPreadFunc read, gpointer src,
                                GDestroyNotify src_free);

/* Page @pgno (1-based) is read from source @source_id at byte @offset. */
void sqlenvfs_image_set_page(SqlenvfsImage *img, guint32 pgno, guint source_id, goffset offset);

/* Where page @pgno is read from: 0 for the base (at the page's own offset),
 * else the id of the source it was last set to, with the byte offset in
 * that source in *@offset (when non-NULL). */
guint sqlenvfs_image_page_source(const SqlenvfsImage *img, guint32 pgno, goffset *offset);

/* The base's descriptor when it is a plain file (a SqlenvfsFileSource), so
 * that a reader can tell whether it changed since it was checked; -1 for a
 * base read through another function. */
int sqlenvfs_image_base_fd(const SqlenvfsImage *img);

/* Change the size in pages (a later commit may shrink or grow the db). */
void sqlenvfs_image_set_n_pages(SqlenvfsImage *img, guint32 n_pages);

guint64 sqlenvfs_image_size(const SqlenvfsImage *img);

/* Read up to @len bytes at @off (invariant 1). Returns the bytes read (0 at
 * or past the end) or -1 with *error. */
gssize sqlenvfs_image_read(SqlenvfsImage *img, void *buf, gsize len, goffset off,
                           SqlenvfsImageReadFlags flags, GError **error);

/* Progress callback for long writes: bytes done of total. */
typedef void (*SqlenvfsProgressFunc)(gpointer user, guint64 done, guint64 total);

/* Checks the crc32 of the base's bytes (all of them, in order): TRUE if
 * they are what the base should hold, else FALSE and *error. */
typedef gboolean (*SqlenvfsImageBaseCheckFunc)(gpointer user, guint32 base_crc32,
                                               GError **error);

/* Defer the check of the base's bytes to the one pass that writes the image
 * (invariant 5): sqlenvfs_image_write_to_fd then reads the whole base as it
 * was when the image was made (its n_pages at sqlenvfs_image_new), every
 * page even where an overlay replaces it, computes its crc32 on the way and
 * calls @check with it after the last byte is written; until @check passed,
 * sqlenvfs_image_read fails with INTEGRITY. @user_free (may be NULL) is
 * called on @user when the image is freed. For a base read through its own
 * pread function: one that another image reads is not read in order. */
void sqlenvfs_image_defer_base_check(SqlenvfsImage *img, SqlenvfsImageBaseCheckFunc check,
                                     gpointer user, GDestroyNotify user_free);

/* Write the whole image to @fd from offset 0, sequentially in large chunks
 * (each page once: its overlay version or the base's), and truncate @fd to
 * the image size. Stores the crc32 of the bytes written in *crc32_out when
 * non-NULL. Does not fsync, but starts the writeback of what it wrote as
 * it goes. With a deferred base check, fails after writing unless the
 * check passed. FALSE and *error on failure (the file is then partial or
 * unchecked: the caller removes it). */
gboolean sqlenvfs_image_write_to_fd(SqlenvfsImage *img, int fd, SqlenvfsProgressFunc progress,
                                    gpointer user, guint32 *crc32_out,
                                    const char *path_for_errors, GError **error);

/* A plain file as a source (snapshots, backups, archive segments). Never use
 * it for a live database file in a process that holds SQLite connections to
 * it: closing the descriptor would drop SQLite's POSIX locks (DESIGN.md). */
typedef struct _SqlenvfsFileSource SqlenvfsFileSource;

/* Open @path read-only. NULL and *error naming the path on failure. */
SqlenvfsFileSource *sqlenvfs_file_source_open(const char *path, GError **error);
/* A SqlenvfsPreadFunc for a SqlenvfsFileSource (errors name the path). */
gssize sqlenvfs_file_source_read(gpointer src, void *buf, gsize len, goffset off,
                                 GError **error);
/* Close and free; usable as the GDestroyNotify of a source. */
void sqlenvfs_file_source_close(gpointer src);
int sqlenvfs_file_source_fd(const SqlenvfsFileSource *src);

G_END_DECLS
