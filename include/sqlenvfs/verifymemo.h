/*
 * verifymemo.h — what `verify` found good before, so that a run reads only
 * what is new or changed since: per sealed WAL archive segment and per
 * stored database file (backup or snapshot), that it was verified, when,
 * and the file as it was then.
 *
 * The memo is ROOT/.sqlenvfs/verified, a text file:
 *
 *   sqlenvfs-verify-memo 1
 *   segment <path> seg=<id> idx=<id> size=<n> first=<seq> prev=0x<crc>
 *           seal=0x<crc> next=<seq> records=<n> commits=<n> gaps=<n> at=<us>
 *   summary <path> file=<id> seal=0x<crc> at=<us>
 *   copy <path> file=<id> size=<n> crc32=0x<crc> page-size=<n> pages=<n> at=<us>
 *   base <path> file=<id> size=<n> crc32=0x<crc> page-size=<n> pages=<n> at=<us>
 *        verdict=good|bad:<reason, percent-escaped>
 *   crc32=0x<8 hex>
 *
 * (one line per entry; <path> absolute, percent-escaped; <id> is
 * dev:inode:size:mtime-ns:ctime-ns of the file; the last line is the crc32
 * of every byte before it). Replaced atomically (a temporary, then a
 * rename), mode 0600, but not fsync'd: a memo lost or cut short by a crash
 * fails its checksum and is ignored (invariant 3), which costs the next run
 * time, not correctness.
 *
 * Invariants:
 *   (1) An entry is used only while its file (and a segment's index) has
 *       the same identity: device, inode, size, mtime and ctime. Any write
 *       changes ctime, even one that restores mtime (touch -r), so a file
 *       changed since is read again. A change that keeps all five (a bit
 *       flipped under the filesystem, a clock set back) is found only by
 *       `verify --full`, which reads everything.
 *   (2) An entry is made only for a file found good whose mtime and ctime
 *       are older than the start of the run by more than
 *       SQLENVFS_VERIFY_MEMO_RACY_US, so that a write in the same timestamp
 *       tick as the one verified cannot go unseen.
 *   (3) A memo that is not a regular file owned by this user, is writable
 *       by others, fails its checksum or holds a line that does not parse
 *       is ignored as a whole (everything is read; the report says why),
 *       never trusted in part.
 *   (4) A save keeps only the entries used or made by the run, so files
 *       that are gone (pruned) leave the memo.
 *   (5) A "base" line is the verdict of the base check (store.h
 *       sqlenvfs_store_check_base: size, SQLite header, crc32 against the
 *       MANIFEST values on the line) for the file as identified, made where
 *       a base is checked anyway: a backup or snapshot just written
 *       (good), verify, restore and the mount's rebuild (good or bad). A
 *       "copy" line is a good base verdict too. A good verdict obeys
 *       invariant 2, except for a copy just written and crc'd by the
 *       process that wrote it, which nothing else writes. So that `list`
 *       agrees with restore without reading any copy: a base known bad
 *       starts no window; one with no verdict for its current identity
 *       starts a window marked as not checked.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/store.h"

G_BEGIN_DECLS

#define SQLENVFS_VERIFY_MEMO_RACY_US (G_USEC_PER_SEC + G_USEC_PER_SEC / 2)

typedef struct _SqlenvfsVerifyMemo SqlenvfsVerifyMemo;

/* An empty memo for a run that started at @now_us. */
SqlenvfsVerifyMemo *sqlenvfs_verify_memo_new(gint64 now_us);

/* The memo in @path for a run that started at @now_us: empty when @path
 * does not exist; empty, and *why (newly allocated; may be NULL) saying so,
 * when it cannot be trusted (invariant 3). Never NULL. */
SqlenvfsVerifyMemo *sqlenvfs_verify_memo_load(const char *path, gint64 now_us, char **why);
void sqlenvfs_verify_memo_free(SqlenvfsVerifyMemo *memo);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsVerifyMemo, sqlenvfs_verify_memo_free)

/* The hooks that let archive.h and store.h verify skip what @memo knows and
 * tell it what they found good (both borrow @memo). */
void sqlenvfs_verify_memo_archive_hooks(SqlenvfsVerifyMemo *memo, SqlenvfsArchiveVerifyMemo *out);
void sqlenvfs_verify_memo_store_hooks(SqlenvfsVerifyMemo *memo, SqlenvfsStoreVerifyMemo *out);

/* Entries that a save would write (used or made since load). */
guint sqlenvfs_verify_memo_n_kept(const SqlenvfsVerifyMemo *memo);

/* Write the entries used or made since load to @path (invariant 4),
 * atomically, mode 0600, not durably (above). FALSE and *error naming the
 * file. */
gboolean sqlenvfs_verify_memo_save(SqlenvfsVerifyMemo *memo, const char *path, GError **error);

/* What @report read and what it skipped, one line (newly allocated):
 * "checked 1 segment, 2 copies; 37 segments verified before, skipped
 * (verify --full re-reads them)", or with full "checked 38 segments, 2
 * copies (--full: everything read)". */
char *sqlenvfs_verify_memo_describe(const SqlenvfsVerifyReport *report);

/* What is known of @sdb's file as it is now: BAD when this process found
 * it bad (store.h, sqlenvfs_store_base_known_bad), else the memo's verdict
 * (a stat, nothing read; invariant 5). *reason (newly allocated) says why
 * when BAD. */
typedef enum {
  SQLENVFS_BASE_UNCHECKED = 0, /* no verdict for the file as it is now */
  SQLENVFS_BASE_GOOD,
  SQLENVFS_BASE_BAD,
} SqlenvfsBaseState;
SqlenvfsBaseState sqlenvfs_verify_memo_base_state(SqlenvfsVerifyMemo *memo,
                                                  const SqlenvfsStoredDb *sdb, char **reason);

/* Add to @root's memo the base verdict @why (NULL: good) for @sdb's file as
 * @id, keeping every other entry; @just_written: the caller wrote and
 * crc'd the file itself (invariant 5). Nothing is written when the memo
 * already says so. Two processes noting at once may lose one verdict,
 * which costs a "not checked" mark, never a wrong one. A failure to save
 * is logged. */
void sqlenvfs_verify_memo_note_base(SqlenvfsRoot *root, const SqlenvfsStoredDb *sdb,
                                    const SqlenvfsFileId *id, gboolean just_written,
                                    const char *why);

/* ROOT/.sqlenvfs/verified (newly allocated). */
char *sqlenvfs_verify_memo_path(SqlenvfsRoot *root);

/* One `verify`: every backup and snapshot, then every WAL archive, each
 * skipping what the root's memo knows unless @full, and the memo saved
 * (a failure to save only costs the next run time, and is logged). Adds
 * to @report as sqlenvfs_store_verify_all and
 * sqlenvfs_retention_verify_archives do, with the counts of what was read
 * and skipped. FALSE and *error only when a directory cannot be read. */
gboolean sqlenvfs_verify_memo_run(SqlenvfsRoot *root, gboolean full,
                                  SqlenvfsVerifyReport *report, GError **error);

G_END_DECLS
