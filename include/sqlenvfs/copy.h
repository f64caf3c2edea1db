/*
 * copy.h — a full, consistent, verified copy of a live database.
 *
 * The copy pins a state with liveview.h and writes its image to a temporary
 * file next to the destination, then:
 *   (1) runs PRAGMA integrity_check on the temporary file (a copy that fails
 *       is removed and the failure reported, never kept);
 *   (2) gives it a mode no more permissive than the source's;
 *   (3) fsyncs it; the caller renames it into place (copy_db_to_tmp) or it is
 *       renamed here (copy_db) and the directory fsync'd.
 * An interrupted copy leaves only a file ".tmp-<name>-<pid>", which the
 * next copy to the same destination removes (once that pid is dead), as
 * sqlenvfs_copy_cleanup_tmp() does for a whole store directory.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/image.h"
#include "sqlenvfs/liveview.h"
#include "sqlenvfs/root.h"

G_BEGIN_DECLS

typedef struct {
  SqlenvfsWalPos pos;  /* where in the WAL the copied state is           */
  guint64 size;        /* bytes written                                  */
  guint32 crc32;       /* crc32 of the written file                      */
  char *journal_mode;  /* source journal mode at the time of the copy    */
} SqlenvfsCopyResult;

void sqlenvfs_copy_result_clear(SqlenvfsCopyResult *res);

/* Copy the live database @src, in WAL mode (anything else is refused
 * without being opened), to @dst (which must not exist unless
 * @overwrite). FALSE and *error on failure, with nothing left at @dst. */
gboolean sqlenvfs_copy_db(const char *src, const char *dst, gboolean overwrite,
                          SqlenvfsProgressFunc progress, gpointer user, SqlenvfsCopyResult *res,
                          GError **error);

/* Write @img to @dst the same way (temp file, integrity check, mode @mode,
 * fsync, rename, fsync dir); @res->pos is left zero. Used for restores.
 * @res may be NULL (no crc32 of the copy is computed then). */
gboolean sqlenvfs_copy_image(SqlenvfsImage *img, const char *dst, int mode, gboolean overwrite,
                             SqlenvfsProgressFunc progress, gpointer user, SqlenvfsCopyResult *res,
                             GError **error);

/* Write @img to the new file @tmp itself (no rename), checked and fsync'd
 * the same way, with mode @mode: for a state that is worked on further
 * before it is installed (refresh-dev). @tmp should be named as
 * util.h's temporaries are ("<prefix>-<pid>"), so that a run that dies
 * leaves something the next run removes. FALSE and *error with nothing
 * left at @tmp. */
gboolean sqlenvfs_copy_image_aside(SqlenvfsImage *img, const char *tmp, int mode,
                                   SqlenvfsProgressFunc progress, gpointer user, GError **error);

/* Whether the command @cmd ("restore", "recover") may write a new file at
 * @output, replacing what is there only with @overwrite (--force). Refused
 * (REFUSED, with @advice, how to put the new file into production, where
 * it helps), even with @overwrite: a production or development database of
 * @root (any "*.db" in data/prod or data/dev, or the same file reached
 * another way; @root may be NULL), an existing output with a -wal, -shm or
 * -journal beside it (a database in use: its connections would mix their
 * WAL with the new file), a missing one with a -wal or -journal that has
 * content or a sidecar that is open (SQLite would apply it to the new file;
 * an empty one, as a read-only reader leaves, is harmless), a file another
 * process has open, and anything but a plain file (a symlink, a
 * directory). NOT_FOUND when the directory of a missing output is not
 * there; EXISTS for an existing plain file without @overwrite. Every
 * message begins "<cmd> to <output>: " and says nothing was written. */
gboolean sqlenvfs_copy_check_output(const SqlenvfsRoot *root, const char *output,
                                    gboolean overwrite, const char *cmd, const char *advice,
                                    GError **error);

/* Remove leftover ".tmp-<name>-<pid>" files and directories in @dir (of
 * an interrupted copy or store entry) whose process is gone; nothing else,
 * and never through a symlink (util.h, sqlenvfs_tmp_leftovers). Returns how
 * many were removed. */
int sqlenvfs_copy_cleanup_tmp(const char *dir);

G_END_DECLS
