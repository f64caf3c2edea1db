/* Unit tests for verifymemo.c: what verify remembers, what makes it read a
 * file again, and a memo that cannot be trusted. The run's start time is
 * injected: files made by the test are an hour old to the memo, except in
 * the test of invariant 2. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/util.h"
#include "sqlenvfs/verifymemo.h"
#include "testutil.h"

#define HOUR (G_GINT64_CONSTANT(3600) * G_USEC_PER_SEC)

static char *tmp;
static char *seg, *idx, *copy, *memo_path;

static void
write_bytes(const char *path, const char *text)
{
  GError *error = NULL;
  ck_assert_msg(g_file_set_contents(path, text, -1, &error), "%s", error ? error->message : "");
}

/* Overwrite @path in place with @text until its ctime differs from @before's (the
 * kernel stamps ctime from a coarse clock), within a deadline. */
static void
rewrite_changing_ctime(const char *path, const char *text, const struct stat *before)
{
  gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  struct stat st;
  do {
    int fd = open(path, O_WRONLY); /* in place: same inode */
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pwrite(fd, text, strlen(text), 0), (ssize_t)strlen(text));
    close(fd);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_ino, before->st_ino);
    if (st.st_ctim.tv_sec != before->st_ctim.tv_sec ||
        st.st_ctim.tv_nsec != before->st_ctim.tv_nsec)
      return;
    g_usleep(1000);
  } while (g_get_monotonic_time() < deadline);
  ck_abort_msg("the ctime of %s did not change within 5 s", path);
}

static void
setup(void)
{
  tmp = testutil_tmpdir();
  seg = g_build_filename(tmp, "0000000000000002.seg", NULL);
  idx = g_build_filename(tmp, "0000000000000002.idx", NULL);
  copy = g_build_filename(tmp, "my db.db", NULL); /* a blank in a path */
  memo_path = g_build_filename(tmp, "verified", NULL);
  write_bytes(seg, "segment bytes");
  write_bytes(idx, "index bytes");
  write_bytes(copy, "copy bytes");
}

static void
teardown(void)
{
  g_free(seg);
  g_free(idx);
  g_free(copy);
  g_free(memo_path);
  testutil_tmpdir_cleanup(tmp);
}

static const SqlenvfsArchiveSegmentFacts FACTS = {
  .size = 13, .first_seq = 87, .prev_crc = 0xd9c48719, .seal = 0x01020304, .next_seq = 171,
  .n_records = 84, .n_commits = 82, .n_gaps = 1,
};

static SqlenvfsStoredDb
stored_db(void)
{
  SqlenvfsStoredDb sdb = { 0 };
  sdb.db = "my db";
  sdb.path = copy;
  sdb.size = 10;
  sdb.crc32 = 0xabcdef01;
  sdb.pos.page_size = 4096;
  sdb.pos.n_pages = 3;
  return sdb;
}

/* A memo that knows @seg and @copy, saved to memo_path, for a run an hour
 * after the files were written. */
static void
remember_both(void)
{
  g_autoptr(SqlenvfsVerifyMemo) m = sqlenvfs_verify_memo_new(g_get_real_time() + HOUR);
  SqlenvfsArchiveVerifyMemo a;
  SqlenvfsStoreVerifyMemo s;
  SqlenvfsStoredDb sdb = stored_db();
  GError *error = NULL;

  sqlenvfs_verify_memo_archive_hooks(m, &a);
  sqlenvfs_verify_memo_store_hooks(m, &s);
  a.verified(a.user, seg, idx, &FACTS);
  s.done(s.user, &sdb);
  ck_assert_uint_eq(sqlenvfs_verify_memo_n_kept(m), 2);
  ck_assert_msg(sqlenvfs_verify_memo_save(m, memo_path, &error), "%s",
                error ? error->message : "");
}

/* Load memo_path; assert whether it was trusted; report what it knows. */
static SqlenvfsVerifyMemo *
load(gboolean trusted, gboolean *knows_seg, gboolean *knows_copy)
{
  g_autofree char *why = NULL;
  SqlenvfsVerifyMemo *m = sqlenvfs_verify_memo_load(memo_path, g_get_real_time() + HOUR, &why);
  SqlenvfsArchiveVerifyMemo a;
  SqlenvfsStoreVerifyMemo s;
  SqlenvfsArchiveSegmentFacts f = { 0 };
  SqlenvfsStoredDb sdb = stored_db();
  gint64 at = 0;

  if (trusted)
    ck_assert_msg(why == NULL, "memo not trusted: %s", why);
  else
    ck_assert_msg(why != NULL && strstr(why, memo_path) != NULL, "memo trusted: %s", why);
  sqlenvfs_verify_memo_archive_hooks(m, &a);
  sqlenvfs_verify_memo_store_hooks(m, &s);
  *knows_seg = a.known(a.user, seg, idx, &f);
  if (*knows_seg)
    ck_assert_int_eq(memcmp(&f, &FACTS, sizeof f), 0);
  *knows_copy = s.known(s.user, &sdb, &at);
  if (*knows_copy)
    ck_assert_int_gt(at, 0);
  return m;
}

START_TEST(test_round_trip)
{
  gboolean ks, kc;
  struct stat st;
  g_autoptr(SqlenvfsVerifyMemo) m = NULL;

  remember_both();
  ck_assert_int_eq(stat(memo_path, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0600);
  m = load(TRUE, &ks, &kc);
  ck_assert(ks);
  ck_assert(kc);
  ck_assert_uint_eq(sqlenvfs_verify_memo_n_kept(m), 2);
}
END_TEST

/* A summary found good is known after a save and a load, for the same
 * seal only, until its file changes, or its file of last versions changes,
 * appears or goes. */
START_TEST(test_summary_round_trip)
{
  g_autofree char *sum = g_build_filename(tmp, "0000000000000002.sum", NULL);
  g_autofree char *last = g_build_filename(tmp, "0000000000000002.last", NULL);
  g_autofree char *why = NULL;
  g_autoptr(SqlenvfsVerifyMemo) m = sqlenvfs_verify_memo_new(g_get_real_time() + HOUR);
  g_autoptr(SqlenvfsVerifyMemo) back = NULL;
  SqlenvfsArchiveVerifyMemo a, b;
  struct stat before;
  GError *error = NULL;

  write_bytes(sum, "summary bytes");
  sqlenvfs_verify_memo_archive_hooks(m, &a);
  ck_assert(!a.summary_known(a.user, sum, last, 0x01020304));
  a.summary_verified(a.user, sum, last, 0x01020304);
  ck_assert_uint_eq(sqlenvfs_verify_memo_n_kept(m), 1);
  ck_assert(sqlenvfs_verify_memo_save(m, memo_path, &error));
  ck_assert_no_error(error);

  back = sqlenvfs_verify_memo_load(memo_path, g_get_real_time() + HOUR, &why);
  ck_assert_msg(why == NULL, "memo not trusted: %s", why);
  sqlenvfs_verify_memo_archive_hooks(back, &b);
  ck_assert(!b.summary_known(b.user, sum, last, 0x01020305)); /* another seal */
  ck_assert(b.summary_known(b.user, sum, last, 0x01020304));
  /* A file of last versions where none was is read with its summary. */
  write_bytes(last, "last versions");
  ck_assert(!b.summary_known(b.user, sum, last, 0x01020304));
  b.summary_verified(b.user, sum, last, 0x01020304);
  ck_assert(b.summary_known(b.user, sum, last, 0x01020304));
  ck_assert_int_eq(stat(last, &before), 0);
  rewrite_changing_ctime(last, "last VERSIONS", &before);
  ck_assert(!b.summary_known(b.user, sum, last, 0x01020304));
  b.summary_verified(b.user, sum, last, 0x01020304);
  ck_assert(b.summary_known(b.user, sum, last, 0x01020304));
  ck_assert_int_eq(unlink(last), 0);
  ck_assert(!b.summary_known(b.user, sum, last, 0x01020304)); /* gone */
  b.summary_verified(b.user, sum, last, 0x01020304);
  ck_assert(b.summary_known(b.user, sum, last, 0x01020304));
  ck_assert_int_eq(stat(sum, &before), 0);
  rewrite_changing_ctime(sum, "summary BYTES", &before);
  ck_assert(!b.summary_known(b.user, sum, last, 0x01020304));

  /* One written in the same clock tick as the run started is not kept. */
  g_clear_pointer(&m, sqlenvfs_verify_memo_free);
  m = sqlenvfs_verify_memo_new(g_get_real_time());
  sqlenvfs_verify_memo_archive_hooks(m, &a);
  a.summary_verified(a.user, sum, last, 0x01020304);
  ck_assert_uint_eq(sqlenvfs_verify_memo_n_kept(m), 0);
}
END_TEST

/* Any change to a file makes it unknown: a rewrite that restores mtime
 * (ctime changes), a change to the segment's index, a MANIFEST that says
 * something else of the copy. */
START_TEST(test_changed_file_is_read_again)
{
  gboolean ks, kc;
  struct stat before, after;
  struct timespec times[2];
  SqlenvfsVerifyMemo *m;
  SqlenvfsStoreVerifyMemo s;
  SqlenvfsStoredDb sdb = stored_db();
  gint64 at;

  remember_both();
  ck_assert_int_eq(stat(seg, &before), 0);
  rewrite_changing_ctime(seg, "segment BYTES", &before); /* same size */
  times[0] = before.st_atim;
  times[1] = before.st_mtim;
  ck_assert_int_eq(utimensat(AT_FDCWD, seg, times, 0), 0);
  ck_assert_int_eq(stat(seg, &after), 0);
  ck_assert_int_eq(after.st_size, before.st_size);
  ck_assert(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
            after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
  m = load(TRUE, &ks, &kc);
  ck_assert_msg(!ks, "a segment rewritten with its mtime restored is still known");
  ck_assert(kc);
  sqlenvfs_verify_memo_free(m);

  remember_both();
  ck_assert_int_eq(stat(idx, &before), 0);
  rewrite_changing_ctime(idx, "index BYTES", &before);
  m = load(TRUE, &ks, &kc);
  ck_assert_msg(!ks, "a segment whose index changed is still known");
  sqlenvfs_verify_memo_free(m);

  remember_both();
  m = sqlenvfs_verify_memo_load(memo_path, g_get_real_time() + HOUR, NULL);
  sqlenvfs_verify_memo_store_hooks(m, &s);
  sdb.crc32 ^= 1;
  ck_assert_msg(!s.known(s.user, &sdb, &at), "a copy whose MANIFEST changed is still known");
  sdb = stored_db();
  ck_assert(s.known(s.user, &sdb, &at));
  sqlenvfs_verify_memo_free(m);
}
END_TEST

static void
rewrite_memo(const char *from, const char *to, gboolean fix_crc)
{
  g_autofree char *data = NULL;
  g_autofree char *body = NULL;
  GString *s;
  char *tail;
  ck_assert(g_file_get_contents(memo_path, &data, NULL, NULL));
  ck_assert_ptr_nonnull(strstr(data, from));
  s = g_string_new(data);
  g_string_replace(s, from, to, 1);
  if (fix_crc) {
    tail = strstr(s->str, "crc32=0x");
    body = g_strndup(s->str, (gsize)(tail - s->str));
    g_string_printf(s, "%scrc32=0x%08x\n", body, sqlenvfs_crc32(0, body, strlen(body)));
  }
  ck_assert(g_file_set_contents(memo_path, s->str, (gssize)s->len, NULL));
  ck_assert_int_eq(chmod(memo_path, 0600), 0);
  g_string_free(s, TRUE);
}

/* A memo that cannot be trusted is ignored as a whole (invariant 3). */
START_TEST(test_damaged_memo_is_ignored)
{
  gboolean ks, kc;
  SqlenvfsVerifyMemo *m;
  g_autofree char *link = g_build_filename(tmp, "elsewhere", NULL);

  /* A flipped digit: the checksum fails. */
  remember_both();
  rewrite_memo("first=87", "first=97", FALSE);
  m = load(FALSE, &ks, &kc);
  ck_assert(!ks && !kc);
  sqlenvfs_verify_memo_free(m);

  /* An edited line with its checksum recomputed, but one that does not
   * parse: the whole memo goes, the good copy line too. */
  remember_both();
  rewrite_memo("first=87", "first=-87", TRUE);
  m = load(FALSE, &ks, &kc);
  ck_assert(!ks && !kc);
  sqlenvfs_verify_memo_free(m);

  /* Writable by others. */
  remember_both();
  ck_assert_int_eq(chmod(memo_path, 0622), 0);
  m = load(FALSE, &ks, &kc);
  ck_assert(!ks && !kc);
  sqlenvfs_verify_memo_free(m);

  /* A symlink to a good memo. */
  remember_both();
  ck_assert_int_eq(rename(memo_path, link), 0);
  ck_assert_int_eq(symlink(link, memo_path), 0);
  m = load(FALSE, &ks, &kc);
  ck_assert(!ks && !kc);
  sqlenvfs_verify_memo_free(m);

  /* Cut short. */
  ck_assert_int_eq(unlink(memo_path), 0);
  ck_assert_int_eq(rename(link, memo_path), 0);
  ck_assert_int_eq(truncate(memo_path, 40), 0);
  m = load(FALSE, &ks, &kc);
  ck_assert(!ks && !kc);
  sqlenvfs_verify_memo_free(m);

  /* None at all: nothing known, and nothing to say. */
  ck_assert_int_eq(unlink(memo_path), 0);
  m = load(TRUE, &ks, &kc);
  ck_assert(!ks && !kc);
  sqlenvfs_verify_memo_free(m);
}
END_TEST

/* Invariant 2: a file changed less than the racy margin before the run
 * started is not remembered. */
START_TEST(test_recent_file_not_remembered)
{
  struct stat st;
  gint64 changed;
  SqlenvfsVerifyMemo *m;
  SqlenvfsArchiveVerifyMemo a;
  SqlenvfsStoreVerifyMemo s;
  SqlenvfsStoredDb sdb = stored_db();

  ck_assert_int_eq(stat(seg, &st), 0);
  changed = (gint64)st.st_ctim.tv_sec * G_USEC_PER_SEC + st.st_ctim.tv_nsec / 1000;
  m = sqlenvfs_verify_memo_new(changed + SQLENVFS_VERIFY_MEMO_RACY_US - 1);
  sqlenvfs_verify_memo_archive_hooks(m, &a);
  sqlenvfs_verify_memo_store_hooks(m, &s);
  a.verified(a.user, seg, idx, &FACTS);
  s.done(s.user, &sdb);
  ck_assert_uint_eq(sqlenvfs_verify_memo_n_kept(m), 0);
  sqlenvfs_verify_memo_free(m);
}
END_TEST

/* Invariant 4: a save keeps what the run used or made, not what it did not
 * meet (a pruned segment). */
START_TEST(test_save_keeps_what_was_used)
{
  gboolean ks, kc;
  SqlenvfsVerifyMemo *m;
  SqlenvfsStoreVerifyMemo s;
  SqlenvfsStoredDb sdb = stored_db();
  gint64 at;

  remember_both();
  m = sqlenvfs_verify_memo_load(memo_path, g_get_real_time() + HOUR, NULL);
  sqlenvfs_verify_memo_store_hooks(m, &s);
  ck_assert(s.known(s.user, &sdb, &at)); /* the copy is met; the segment is not */
  ck_assert(sqlenvfs_verify_memo_save(m, memo_path, NULL));
  sqlenvfs_verify_memo_free(m);
  m = load(TRUE, &ks, &kc);
  ck_assert(!ks);
  ck_assert(kc);
  sqlenvfs_verify_memo_free(m);
}
END_TEST

/* A run that changes nothing leaves the memo's file as it is (no
 * temporary, no rename, which ext4 follows with a writeback); one that
 * changes an entry replaces it. */
START_TEST(test_unchanged_save_leaves_file)
{
  SqlenvfsVerifyMemo *m;
  SqlenvfsArchiveVerifyMemo a;
  SqlenvfsStoreVerifyMemo s;
  SqlenvfsArchiveSegmentFacts f = { 0 };
  SqlenvfsStoredDb sdb = stored_db();
  struct stat before, after;
  gint64 at;

  remember_both();
  ck_assert_int_eq(stat(memo_path, &before), 0);
  m = sqlenvfs_verify_memo_load(memo_path, g_get_real_time() + HOUR, NULL);
  sqlenvfs_verify_memo_archive_hooks(m, &a);
  sqlenvfs_verify_memo_store_hooks(m, &s);
  ck_assert(a.known(a.user, seg, idx, &f));
  ck_assert(s.known(s.user, &sdb, &at));
  ck_assert(sqlenvfs_verify_memo_save(m, memo_path, NULL));
  ck_assert_int_eq(stat(memo_path, &after), 0);
  ck_assert_uint_eq(after.st_ino, before.st_ino);
  /* The same bytes saved elsewhere are written there. */
  {
    g_autofree char *other = g_build_filename(tmp, "other-memo", NULL);
    ck_assert(sqlenvfs_verify_memo_save(m, other, NULL));
    ck_assert(g_file_test(other, G_FILE_TEST_IS_REGULAR));
  }
  /* The segment verified again: its time changes, so the file does. */
  a.verified(a.user, seg, idx, &FACTS);
  ck_assert(sqlenvfs_verify_memo_save(m, memo_path, NULL));
  ck_assert_int_eq(stat(memo_path, &after), 0);
  ck_assert_uint_ne(after.st_ino, before.st_ino);
  sqlenvfs_verify_memo_free(m);
}
END_TEST

/* ---------------------------------------------- with a real archive */

#define PS 1024
#define T0 (G_GINT64_CONSTANT(1764346440) * G_USEC_PER_SEC)

/* An archive in @adir of several sealed segments of 64 KiB and a last one
 * being written: a GAP, then @n commits of 8 pages each. The pages are
 * pseudo-random bytes, which do not compress, so that each commit takes
 * about 8 KiB of its segment as stored. */
static void
append_commits(const char *adir, guint from, guint n)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsArchiveWriter) w = sqlenvfs_archive_writer_open(adir, 64 * 1024, 0600,
                                                                    &error);
  SqlenvfsArchiveEntry g = { 0 };
  guint8 page[PS];

  ck_assert_no_error(error);
  g.page_size = PS;
  if (from == 1)
    ck_assert(sqlenvfs_archive_writer_add_gap(w, T0, 0, SQLENVFS_GAP_FIRST_START, "", &g,
                                              &error));
  for (guint k = from; k < from + n; k++) {
    SqlenvfsArchiveEntry e = { 0 };
    guint32 pgnos[8];
    e.time = T0 + (gint64)k * G_USEC_PER_SEC;
    e.aux_time = e.time - 1000;
    e.page_size = PS;
    e.db_pages = 100;
    e.n_pages = 8;
    e.salt1 = 1;
    e.salt2 = 2;
    e.first_frame = 1 + (k - 1) * 8;
    e.commit_frame = k * 8;
    for (guint i = 0; i < 8; i++)
      pgnos[i] = i + 1;
    ck_assert(sqlenvfs_archive_writer_begin_commit(w, &e, pgnos, &error));
    for (guint i = 0; i < 8; i++) {
      guint32 x = k * 8 + i + 1;
      for (gsize b = 0; b < sizeof page; b++) {
        x ^= x << 13; /* xorshift32 */
        x ^= x >> 17;
        x ^= x << 5;
        page[b] = (guint8)x;
      }
      ck_assert(sqlenvfs_archive_writer_add_pages(w, page, PS, &error));
    }
    ck_assert(sqlenvfs_archive_writer_end_commit(w, &error));
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert_no_error(error);
}

static void
write_archive(const char *adir, guint n)
{
  append_commits(adir, 1, n);
}

typedef struct {
  SqlenvfsArchiveSegmentFacts lie; /* what a lying memo says            */
  guint n_asked, n_told;
} Liar;

static gboolean
liar_known(gpointer user, const char *seg_path, const char *idx_path,
           SqlenvfsArchiveSegmentFacts *facts)
{
  Liar *l = user;
  l->n_asked++;
  *facts = l->lie;
  return TRUE;
}

static void
liar_verified(gpointer user, const char *seg_path, const char *idx_path,
              const SqlenvfsArchiveSegmentFacts *facts)
{
  Liar *l = user;
  if (strstr(seg_path, "0000000000000001.seg") != NULL)
    l->lie = *facts;
  l->n_told++;
}

/* A second verify with the memo skips every sealed segment and counts the
 * same records; a memo whose facts disagree with a segment's header or
 * seal is not followed. */
START_TEST(test_archive_skips_only_what_agrees)
{
  g_autofree char *adir = g_build_filename(tmp, "archive", NULL);
  g_autoptr(SqlenvfsVerifyMemo) m = sqlenvfs_verify_memo_new(g_get_real_time() + HOUR);
  SqlenvfsArchiveVerifyResult full = { 0 }, first = { 0 }, second = { 0 }, lied = { 0 };
  SqlenvfsArchiveVerifyMemo hooks, liar_hooks = { liar_known, liar_verified, NULL, NULL, NULL, FALSE };
  Liar liar = { { 0 }, 0, 0 };
  GError *error = NULL;

  write_archive(adir, 60);
  ck_assert(sqlenvfs_archive_verify(adir, NULL, NULL, &full, &error));
  ck_assert_no_error(error);
  ck_assert_uint_ge(full.n_segments, 4);
  ck_assert_uint_eq(full.n_skipped, 0);

  sqlenvfs_verify_memo_archive_hooks(m, &hooks);
  ck_assert(sqlenvfs_archive_verify_with(adir, &hooks, NULL, NULL, &first, &error));
  ck_assert_uint_eq(first.n_skipped, 0);
  /* The sealed segments, and their summaries. */
  ck_assert_uint_eq(sqlenvfs_verify_memo_n_kept(m), 2 * (full.n_segments - 1));
  ck_assert(sqlenvfs_archive_verify_with(adir, &hooks, NULL, NULL, &second, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(second.n_skipped, full.n_segments - 1);
  ck_assert_uint_eq(second.n_records, full.n_records);
  ck_assert_uint_eq(second.n_commits, full.n_commits);
  ck_assert_uint_eq(second.n_gaps, full.n_gaps);

  /* Learn segment 1's true facts, then offer them for every segment: only
   * segment 1 agrees (its header, size and seal); the others are read. */
  liar_hooks.user = &liar;
  ck_assert(sqlenvfs_archive_verify_with(adir, &liar_hooks, NULL, NULL, &lied, &error));
  ck_assert_uint_eq(lied.n_skipped, 0); /* lie is all zeros then */
  ck_assert_uint_eq(liar.n_told, full.n_segments - 1);
  liar.n_asked = liar.n_told = 0;
  ck_assert(sqlenvfs_archive_verify_with(adir, &liar_hooks, NULL, NULL, &lied, &error));
  ck_assert_uint_eq(liar.n_asked, full.n_segments);
  ck_assert_uint_eq(lied.n_skipped, 1);
  ck_assert_uint_eq(lied.n_records, full.n_records);
  /* Segment 1 with a wrong seal checksum in the memo: read again. */
  liar.lie.seal ^= 1;
  ck_assert(sqlenvfs_archive_verify_with(adir, &liar_hooks, NULL, NULL, &lied, &error));
  ck_assert_uint_eq(lied.n_skipped, 0);
}
END_TEST

static gint
cmp_u64(gconstpointer a, gconstpointer b)
{
  guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
  return x < y ? -1 : x > y;
}

/* The numbers of the segments in @adir, in order. */
static GArray *
archive_list_numbers(const char *adir)
{
  GArray *nums = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_autoptr(GDir) d = g_dir_open(adir, 0, NULL);
  const char *name;
  ck_assert_ptr_nonnull(d);
  while ((name = g_dir_read_name(d)) != NULL) {
    guint64 n;
    if (g_str_has_suffix(name, ".seg") && strlen(name) == 20 &&
        g_ascii_string_to_unsigned(name, 10, 1, G_MAXUINT64, &n, NULL) == FALSE) {
      g_autofree char *digits = g_strndup(name, 16);
      if (g_ascii_string_to_unsigned(digits, 10, 1, G_MAXUINT64, &n, NULL))
        g_array_append_val(nums, n);
    }
  }
  g_array_sort(nums, cmp_u64);
  return nums;
}

/* The size of file @ext of segment @number in @adir (0: none). */
static guint64
seg_file_size(const char *adir, guint64 number, const char *ext)
{
  g_autofree char *name = g_strdup_printf("%016" G_GUINT64_FORMAT ".%s", number, ext);
  g_autofree char *path = g_build_filename(adir, name, NULL);
  struct stat st;
  return stat(path, &st) == 0 ? (guint64)st.st_size : 0;
}

/* Flip the byte at @off of @path in place, until its ctime has moved past
 * @before's (the kernel stamps it from a coarse clock), so that the memo
 * sees a changed file. */
static void
flip_changing_ctime(const char *path, goffset off)
{
  struct stat before, st;
  gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  guint8 b;
  int fd = open(path, O_RDWR);

  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(fstat(fd, &before), 0);
  ck_assert_int_eq(pread(fd, &b, 1, off), 1);
  b ^= 0x10;
  do {
    ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
    ck_assert_int_eq(fstat(fd, &st), 0);
    if (st.st_ctim.tv_sec != before.st_ctim.tv_sec ||
        st.st_ctim.tv_nsec != before.st_ctim.tv_nsec) {
      close(fd);
      return;
    }
    g_usleep(1000);
  } while (g_get_monotonic_time() < deadline);
  close(fd);
  ck_abort_msg("the ctime of %s did not change within 5 s", path);
}

static guint n_problems, n_summary_problems;

static void
count_problem(gpointer user, const char *file, const char *message)
{
  (void)user;
  (void)message;
  n_problems++;
  if (g_str_has_suffix(file, "0000000000000005.sum"))
    n_summary_problems++;
}

/* After one more segment is sealed, a verify with the memo reads what is
 * new (the segment that was being written, now sealed: its records, then
 * again to rebuild its summary; its index and summary; the new last
 * segment) and of every older segment only its header and seal: not its
 * records, its index or its summary, so that what it reads does not grow
 * with the history kept. */
START_TEST(test_archive_reads_only_what_is_new)
{
  g_autofree char *adir = g_build_filename(tmp, "archive", NULL);
  g_autoptr(SqlenvfsVerifyMemo) m = sqlenvfs_verify_memo_new(g_get_real_time() + HOUR);
  g_autoptr(GArray) before = NULL, after = NULL;
  SqlenvfsArchiveVerifyResult first = { 0 }, second = { 0 };
  SqlenvfsArchiveVerifyMemo hooks;
  guint64 live, bound, old_bytes = 0, r0, r1;
  GError *error = NULL;
  guint k = 600;

  write_archive(adir, k);
  sqlenvfs_verify_memo_archive_hooks(m, &hooks);
  ck_assert(sqlenvfs_archive_verify_with(adir, &hooks, NULL, NULL, &first, &error));
  ck_assert_no_error(error);
  ck_assert_uint_ge(first.n_segments, 60);

  /* Commits until the segment being written is sealed. */
  before = archive_list_numbers(adir);
  live = g_array_index(before, guint64, before->len - 1);
  for (guint n = 0; seg_file_size(adir, live, "sum") == 0; n++) {
    ck_assert_uint_lt(n, 100);
    append_commits(adir, ++k, 1);
  }
  after = archive_list_numbers(adir);
  ck_assert_uint_eq(after->len, before->len + 1);

  /* What is new: the segment just sealed twice, its index and summary, the
   * new last segment and its index; then the header and seal of each
   * segment (168 bytes), and a little more. */
  bound = 2 * seg_file_size(adir, live, "seg") + seg_file_size(adir, live, "idx") +
          seg_file_size(adir, live, "sum") + seg_file_size(adir, live + 1, "seg") +
          seg_file_size(adir, live + 1, "idx") + 256 * (guint64)after->len + 16 * 1024;
  for (guint64 n = 1; n < live; n++)
    old_bytes += seg_file_size(adir, n, "seg") + seg_file_size(adir, n, "idx") +
                 seg_file_size(adir, n, "sum");
  ck_assert_uint_gt(old_bytes, 10 * bound); /* the bound is far below the history */

  r0 = testutil_bytes_read();
  ck_assert(sqlenvfs_archive_verify_with(adir, &hooks, NULL, NULL, &second, &error));
  r1 = testutil_bytes_read();
  ck_assert_no_error(error);
  ck_assert_uint_eq(second.n_skipped, live - 1);
  ck_assert_msg(r1 - r0 <= bound, "verify after one new segment read %" G_GUINT64_FORMAT
                " bytes; what is new allows %" G_GUINT64_FORMAT, r1 - r0, bound);
}
END_TEST

/* With the memo present, a segment or a summary changed in place (its
 * identity changed) is read again, and its damage found. */
START_TEST(test_archive_changed_file_damage_found)
{
  g_autofree char *adir = g_build_filename(tmp, "archive", NULL);
  g_autofree char *seg3 = g_build_filename(adir, "0000000000000003.seg", NULL);
  g_autofree char *sum5 = g_build_filename(adir, "0000000000000005.sum", NULL);
  g_autoptr(SqlenvfsVerifyMemo) m = sqlenvfs_verify_memo_new(g_get_real_time() + HOUR);
  SqlenvfsArchiveVerifyResult res = { 0 };
  SqlenvfsArchiveVerifyMemo hooks;
  GError *error = NULL;

  write_archive(adir, 80);
  sqlenvfs_verify_memo_archive_hooks(m, &hooks);
  ck_assert(sqlenvfs_archive_verify_with(adir, &hooks, NULL, NULL, &res, &error));
  ck_assert(sqlenvfs_archive_verify_with(adir, &hooks, NULL, NULL, &res, &error));
  ck_assert_no_error(error);
  ck_assert_uint_ge(res.n_skipped, 6);

  /* A record in the middle of an old segment. */
  flip_changing_ctime(seg3, (goffset)seg_file_size(adir, 3, "seg") / 2);
  n_problems = 0;
  ck_assert(!sqlenvfs_archive_verify_with(adir, &hooks, count_problem, NULL, &res, &error));
  ck_assert_ptr_nonnull(error);
  ck_assert(strstr(error->message, "0000000000000003.seg") != NULL);
  g_clear_error(&error);
  ck_assert_uint_ge(n_problems, 1);
  flip_changing_ctime(seg3, (goffset)seg_file_size(adir, 3, "seg") / 2);
  n_problems = 0;
  ck_assert(sqlenvfs_archive_verify_with(adir, &hooks, count_problem, NULL, &res, &error));
  ck_assert_no_error(error);

  /* An old segment cut short, then one grown by a byte. */
  ck_assert_int_eq(truncate(seg3, (off_t)seg_file_size(adir, 3, "seg") - 1), 0);
  ck_assert(!sqlenvfs_archive_verify_with(adir, &hooks, count_problem, NULL, &res, &error));
  g_clear_error(&error);
  ck_assert_int_eq(truncate(seg3, (off_t)seg_file_size(adir, 3, "seg") + 2), 0);
  ck_assert(!sqlenvfs_archive_verify_with(adir, &hooks, count_problem, NULL, &res, &error));
  g_clear_error(&error);

  /* An old summary (its segment unchanged) damaged in place. */
  ck_assert_uint_gt(seg_file_size(adir, 5, "sum"), 0);
  flip_changing_ctime(sum5, (goffset)seg_file_size(adir, 5, "sum") - 10);
  n_summary_problems = 0;
  ck_assert(!sqlenvfs_archive_verify_with(adir, &hooks, count_problem, NULL, &res, &error));
  ck_assert_ptr_nonnull(error);
  g_clear_error(&error);
  ck_assert_uint_eq(n_summary_problems, 1);
}
END_TEST

/* The sealed segments a verify read whole and found good are not read
 * again by the record checks of the same process (the timeline a verify
 * opens to check the copies' states): only the segment being written is. */
START_TEST(test_verified_segments_not_checked_again)
{
  g_autofree char *adir = g_build_filename(tmp, "archive", NULL);
  g_autoptr(SqlenvfsArchive) a = NULL;
  SqlenvfsArchiveVerifyResult res = { 0 };
  g_autoptr(GArray) nums = NULL;
  guint64 last, bound, total = 0, r0, r1;
  GError *error = NULL;

  write_archive(adir, 200);
  nums = archive_list_numbers(adir);
  last = g_array_index(nums, guint64, nums->len - 1);
  bound = seg_file_size(adir, last, "seg") + 16 * 1024;
  for (guint64 n = 1; n < last; n++)
    total += seg_file_size(adir, n, "seg");
  ck_assert_uint_gt(total, 10 * bound);

  sqlenvfs_archive_forget_checks();
  ck_assert(sqlenvfs_archive_verify_with(adir, NULL, NULL, NULL, &res, &error));
  ck_assert_no_error(error);
  a = sqlenvfs_archive_open(adir, &error);
  ck_assert_no_error(error);
  r0 = testutil_bytes_read();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  r1 = testutil_bytes_read();
  ck_assert_no_error(error);
  ck_assert_msg(r1 - r0 <= bound, "the record checks read %" G_GUINT64_FORMAT " bytes after "
                "verify; the segment being written allows %" G_GUINT64_FORMAT, r1 - r0, bound);

  /* Without the verify, they read every segment. */
  sqlenvfs_archive_forget_checks();
  g_clear_pointer(&a, sqlenvfs_archive_free);
  a = sqlenvfs_archive_open(adir, &error);
  r0 = testutil_bytes_read();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  r1 = testutil_bytes_read();
  ck_assert_uint_gt(r1 - r0, total / 2);
}
END_TEST

/* A record larger than the window verify reads segments through (4 MiB)
 * is read on its own: checked, and its damage found. */
START_TEST(test_archive_record_larger_than_window)
{
  g_autofree char *adir = g_build_filename(tmp, "archive", NULL);
  g_autofree char *seg2 = g_build_filename(adir, "0000000000000002.seg", NULL);
  SqlenvfsArchiveVerifyResult res = { 0 };
  GError *error = NULL;
  const guint n = 5000; /* pages of 1 KiB that do not compress: about 5 MiB */
  g_autofree guint32 *pgnos = g_new(guint32, n);
  guint8 page[PS];
  guint32 x = 7;

  {
    g_autoptr(SqlenvfsArchiveWriter) w = sqlenvfs_archive_writer_open(adir, 64 * 1024, 0600,
                                                                      &error);
    SqlenvfsArchiveEntry g = { 0 }, e = { 0 };
    ck_assert_no_error(error);
    g.page_size = PS;
    ck_assert(sqlenvfs_archive_writer_add_gap(w, T0, 0, SQLENVFS_GAP_FIRST_START, "", &g,
                                              &error));
    e.time = T0 + G_USEC_PER_SEC;
    e.aux_time = e.time - 1000;
    e.page_size = PS;
    e.db_pages = n;
    e.n_pages = n;
    e.salt1 = 1;
    e.salt2 = 2;
    e.first_frame = 1;
    e.commit_frame = n;
    for (guint i = 0; i < n; i++)
      pgnos[i] = i + 1;
    ck_assert(sqlenvfs_archive_writer_begin_commit(w, &e, pgnos, &error));
    for (guint i = 0; i < n; i++) {
      for (gsize b = 0; b < sizeof page; b++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        page[b] = (guint8)x;
      }
      ck_assert(sqlenvfs_archive_writer_add_pages(w, page, PS, &error));
    }
    ck_assert(sqlenvfs_archive_writer_end_commit(w, &error));
    ck_assert(sqlenvfs_archive_writer_sync(w, &error));
    ck_assert_no_error(error);
  }
  append_commits(adir, 2, 10); /* seals its segment, the second */
  ck_assert_uint_gt(seg_file_size(adir, 2, "seg"), (4u << 20) + 64 * 1024);
  ck_assert_uint_gt(seg_file_size(adir, 2, "sum"), 0);
  ck_assert(sqlenvfs_archive_verify_with(adir, NULL, NULL, NULL, &res, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(res.n_commits, 11);

  flip_changing_ctime(seg2, 3 << 20); /* inside the large record */
  ck_assert(!sqlenvfs_archive_verify_with(adir, NULL, NULL, NULL, &res, &error));
  ck_assert_ptr_nonnull(error);
  ck_assert(strstr(error->message, "0000000000000002.seg") != NULL);
  g_clear_error(&error);
}
END_TEST

static Suite *
verifymemo_suite(void)
{
  Suite *s = suite_create("verifymemo");
  TCase *tc = tcase_create("verifymemo");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_round_trip);
  tcase_add_test(tc, test_unchanged_save_leaves_file);
  tcase_add_test(tc, test_summary_round_trip);
  tcase_add_test(tc, test_changed_file_is_read_again);
  tcase_add_test(tc, test_damaged_memo_is_ignored);
  tcase_add_test(tc, test_recent_file_not_remembered);
  tcase_add_test(tc, test_save_keeps_what_was_used);
  tcase_add_test(tc, test_archive_skips_only_what_agrees);
  tcase_add_test(tc, test_archive_reads_only_what_is_new);
  tcase_add_test(tc, test_archive_changed_file_damage_found);
  tcase_add_test(tc, test_verified_segments_not_checked_again);
  tcase_add_test(tc, test_archive_record_larger_than_window);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(verifymemo_suite());
}
