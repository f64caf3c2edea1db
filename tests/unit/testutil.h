/* Shared helpers for the Check suites: a temporary directory per test, a
 * fake clock, and running a suite. */
#pragma once

#include <check.h>
#include <glib.h>

#include "sqlenvfs/archive.h"

/* A fresh temporary directory (removed by testutil_tmpdir_cleanup; one
 * left by a test that was killed or failed is removed by testutil_run once
 * its process is gone). */
char *testutil_tmpdir(void);
void testutil_tmpdir_cleanup(char *dir);

/* Fake clock: sqlenvfs_clock_now() returns what was set last. */
void testutil_clock_set(gint64 us);
void testutil_clock_reset(void);

struct _SqlenvfsArchiver;

/* Wait until the archiver @a (running in another thread) captures @db with
 * no snapshot pending; fail the test if it has not within 10 s. */
void testutil_wait_capturing(struct _SqlenvfsArchiver *a, const char *db);

struct _SqlenvfsRoot;

/* Run an archiver of @root in a thread until it captures "app" with its
 * chain's snapshot taken, call @fn(@user) (when not NULL), wait until
 * everything is archived, and stop it. */
void testutil_archive_while(struct _SqlenvfsRoot *root, void (*fn)(gpointer user), gpointer user);

/* Rewrite the archive in @dir (one segment, no damage) record by record
 * through a new writer: every record keeps its sequence number, times and
 * WAL position; new segments in format @version (0: the writer's default).
 * @edit, when not NULL, may change each COMMIT's entry before it is
 * written. The archive as it was is moved to @keep_as. */
void testutil_rewrite_archive(const char *dir, const char *keep_as, guint32 version,
                              void (*edit)(SqlenvfsArchiveEntry *e, gpointer user),
                              gpointer user);

/* Run @sql on @db; fail the test, naming the SQL and SQLite's message, if
 * it fails. */
void testutil_exec(sqlite3 *db, const char *sql);

/* Bytes this process has read so far (read and pread), from /proc. */
guint64 testutil_bytes_read(void);

/* Read calls (read, pread) this process has made so far, from /proc. */
guint64 testutil_read_calls(void);

/* Run @s and return the process exit status. */
int testutil_run(Suite *s);

/* Assert a GError is NULL, printing its message when it is not. */
#define ck_assert_no_error(err) \
  ck_assert_msg((err) == NULL, "unexpected error: %s", (err) ? (err)->message : "")
