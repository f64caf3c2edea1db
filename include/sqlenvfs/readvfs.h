/*
 * readvfs.h — an SQLite VFS that reads a finished database file in large
 * blocks.
 *
 * PRAGMA integrity_check of a copy (a backup, a snapshot, a restore's
 * output) asks for one page at a time: for a 1 GiB database of 4 KiB pages
 * that is 260 thousand read calls, and the calls, not the bytes, were most
 * of the check's time. Through this VFS a main database file is read in
 * aligned blocks, four kept per file: a read that no block holds reads the
 * block around it. The blocks' length follows how they were used: when a
 * block leaves having served half of its bytes or more (a reader going
 * through the file, forwards or backwards, as the check walks a table's
 * cells from the last), the next ones are twice as long, up to 1 MiB; when
 * it served less than a quarter (a reader jumping about), half as long,
 * down to 16 KiB. Every other file, and every other call, goes to the
 * default VFS.
 *
 * Invariants:
 *   (1) A read returns exactly the bytes and the result code the default
 *       VFS would return for it, short reads at the end of the file
 *       included (a block never reaches past the size the file had at
 *       open; a read that would, or that a block cannot hold, is passed
 *       through, and so is a read whose block could not be read).
 *   (2) Only for files that nothing changes while they are open (opened
 *       with immutable=1): a block is never invalidated by another
 *       process. Writes through the file are passed on and drop the blocks.
 *   (3) Memory: at most four blocks of 1 MiB per open file.
 *
 * Open a file through it with the URI parameter vfs=SQLENVFS_READVFS_NAME
 * after sqlenvfs_readvfs_register().
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define SQLENVFS_READVFS_NAME "sqlenvfs-readahead"

/* Register the VFS (once; later calls do nothing). FALSE and *error when
 * SQLite has no default VFS to wrap or refuses the registration. */
gboolean sqlenvfs_readvfs_register(GError **error);

typedef struct {
  guint64 n_asked;  /* reads SQLite asked of main database files        */
  guint64 n_file;   /* reads made of those files (windows and misses)   */
} SqlenvfsReadvfsStats;

/* Totals for the process since it started (for tests and benchmarks). */
void sqlenvfs_readvfs_stats(SqlenvfsReadvfsStats *out);

G_END_DECLS
