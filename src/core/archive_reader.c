/*
 * archive_reader.c — reading the archive: open and refresh, records read and
 * checked, record sources for images, check_records and its memo, sparse
 * reading
 * (byte layout and invariants: archive_format.c, docs/ARCHIVE.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "archive_int.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/testhooks.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"

/* ------------------------------------------------------------------ */
/* Reader                                                               */


static void
segment_clear(SqlenvfsArchiveSegment *s)
{
  g_free(s->path);
}

static void
segsum_clear(ArchiveSegSum *ss)
{
  g_free(ss->marks);
  g_free(ss->gens);
  if (ss->idx_open && ss->idx_fd >= 0)
    close(ss->idx_fd);
  g_free(ss->idx_path);
}

/* Indexes kept open at once for reading entry by entry: an archive of
 * many segments does not hold a descriptor for each (the others are
 * opened again when asked). */
#define IDX_OPEN_MAX 16

/* The file name of @seg in the archive's directory. */
static const char *
seg_base(const SqlenvfsArchiveSegment *seg)
{
  const char *slash = strrchr(seg->path, '/');
  return slash != NULL ? slash + 1 : seg->path;
}

static void ensure_all(SqlenvfsArchive *a);
static ArchiveSegSum *segsum(const SqlenvfsArchive *a, guint si);

void
sqlenvfs_archive_free(SqlenvfsArchive *a)
{
  if (a == NULL)
    return;
  for (guint i = 0; i < a->fds->len; i++)
    if (g_array_index(a->fds, int, i) >= 0)
      close(g_array_index(a->fds, int, i));
  g_array_free(a->fds, TRUE);
  g_array_free(a->segments, TRUE);
  g_array_free(a->entries, TRUE);
  g_array_free(a->segsum, TRUE);
  g_array_free(a->cache, TRUE);
  if (a->marks)
    g_array_free(a->marks, TRUE);
  if (a->no_sum_of)
    g_array_free(a->no_sum_of, TRUE);
  ZSTD_freeDCtx(a->dctx);
  g_free(a->rwin);
  if (a->dfd >= 0)
    close(a->dfd);
  g_free(a->dir);
  g_free(a);
}

guint
sqlenvfs_archive_n_entries(const SqlenvfsArchive *a)
{
  ensure_all((SqlenvfsArchive *)a);
  return a->entries->len;
}

const SqlenvfsArchiveEntry *
sqlenvfs_archive_entry(const SqlenvfsArchive *a, guint i)
{
  ensure_all((SqlenvfsArchive *)a);
  g_return_val_if_fail(i < a->entries->len, NULL);
  return &g_array_index(a->entries, SqlenvfsArchiveEntry, i);
}

guint
sqlenvfs_archive_n_segments(const SqlenvfsArchive *a)
{
  return a->segments->len;
}

const SqlenvfsArchiveSegment *
sqlenvfs_archive_segment(const SqlenvfsArchive *a, guint i)
{
  g_return_val_if_fail(i < a->segments->len, NULL);
  return &g_array_index(a->segments, SqlenvfsArchiveSegment, i);
}

/* The last real (not synthetic) entry loaded, or NULL: in @entries, or
 * the SEAL of the last summarized segment when that is later. */
static const SqlenvfsArchiveEntry *
last_real(const SqlenvfsArchive *a)
{
  const SqlenvfsArchiveEntry *r = NULL;
  for (guint i = a->entries->len; i > 0; i--) {
    const SqlenvfsArchiveEntry *e = &g_array_index(a->entries, SqlenvfsArchiveEntry, i - 1);
    if (e->seq != 0) {
      r = e;
      break;
    }
  }
  if (a->has_sum_last && (r == NULL || a->sum_last.seq > r->seq))
    return &a->sum_last;
  return r;
}

/* A DAMAGED gap before @seq (first record of segment @si, at @time) when
 * the sequence does not continue from the last record loaded, or when
 * that record ends an earlier segment without its SEAL. A writer starts a
 * segment only after sealing the one before, and the SEAL takes a number:
 * a segment of this archive cut short (its seal lost) leaves that number
 * missing. One that ends just before the next segment's first record
 * without a SEAL was not followed by that segment in one history (the
 * last, unsealed segment of this root, then a later segment of a copy of
 * it that sealed its own at that number), and no state is composed
 * across the two. */
static void
gap_before(SqlenvfsArchive *a, guint64 seq, gint64 time, guint si)
{
  const SqlenvfsArchiveEntry *prev = last_real(a);
  if (prev && (seq != prev->seq + 1 ||
               (prev->segment != si &&
                !g_array_index(a->segments, SqlenvfsArchiveSegment, prev->segment).is_sealed))) {
    SqlenvfsArchiveEntry gap = { 0 };
    gap.type = SQLENVFS_ARCHIVE_GAP;
    gap.reason = SQLENVFS_GAP_DAMAGED;
    gap.time = MAX(time, prev->time);
    gap.aux_time = prev->type == SQLENVFS_ARCHIVE_COMMIT ? prev->aux_time : prev->time;
    gap.commit_frame = G_MAXUINT32; /* never a state */
    gap.segment = si;
    g_array_append_val(a->entries, gap);
  }
}

/* A DAMAGED gap after the last record loaded, in segment @si: the bytes
 * after it are known lost (a declared hole to its end, read_holes), so no
 * state after that record is known. It starts 1 us after that record, the
 * first time whose state is not known. */
static void
gap_at_end(SqlenvfsArchive *a, guint si)
{
  const SqlenvfsArchiveEntry *prev = last_real(a);
  SqlenvfsArchiveEntry gap = { 0 };
  gap.type = SQLENVFS_ARCHIVE_GAP;
  gap.reason = SQLENVFS_GAP_DAMAGED;
  gap.time = prev != NULL ? prev->time + 1 : 0;
  gap.aux_time = prev == NULL ? 0
                 : prev->type == SQLENVFS_ARCHIVE_COMMIT ? prev->aux_time : prev->time;
  gap.commit_frame = G_MAXUINT32; /* never a state */
  gap.segment = si;
  g_array_append_val(a->entries, gap);
}

/* Append @e (from segment @si), inserting a DAMAGED gap first when the
 * sequence does not continue (invariant 2). */
static void
add_entry(SqlenvfsArchive *a, SqlenvfsArchiveEntry *e, guint si)
{
  SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);

  gap_before(a, e->seq, e->time, si);
  e->segment = si;
  g_array_append_val(a->entries, *e);
  seg->n_entries++;
}

/* Is the record @e of the last segment one that a power cut may have left
 * half-written? Records before the alive file's sequence number were
 * synced before it was written; later ones may not have been. */
static gboolean
is_unconfirmed(const SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e)
{
  return !a->has_alive || e->seq >= a->alive_seq;
}

/* Read the record @e (at e->offset of @sf) in full and check it. FALSE
 * with no error when it is incomplete or fails a checksum. */
static gboolean
record_is_whole(SegFile *sf, const SqlenvfsArchiveEntry *e, guint8 **chunk, GError **error)
{
  SqlenvfsArchiveEntry r;
  gboolean torn;
  if (*chunk == NULL)
    *chunk = g_malloc(IO_CHUNK);
  if (!archive_read_record(sf, e->offset, &r, &torn, NULL, *chunk, error))
    return FALSE;
  return r.seq == e->seq && r.length == e->length && r.type == e->type;
}

/* Directories under which archives may carry holes files: the trees a
 * remote reader of this process assembled (sqlenvfs_archive_trust_holes_under),
 * as real paths, each once per registration. */
static GMutex holes_lock;
static GPtrArray *holes_trees;

void
sqlenvfs_archive_trust_holes_under(const char *dir)
{
  char *real = realpath(dir, NULL);
  g_mutex_lock(&holes_lock);
  if (holes_trees == NULL)
    holes_trees = g_ptr_array_new_with_free_func(free);
  g_ptr_array_add(holes_trees, real != NULL ? real : strdup(dir));
  g_mutex_unlock(&holes_lock);
}

void
sqlenvfs_archive_untrust_holes_under(const char *dir)
{
  char *real = realpath(dir, NULL);
  const char *key = real != NULL ? real : dir;
  g_mutex_lock(&holes_lock);
  for (guint i = 0; holes_trees != NULL && i < holes_trees->len; i++)
    if (strcmp(holes_trees->pdata[i], key) == 0) {
      g_ptr_array_remove_index(holes_trees, i);
      break;
    }
  g_mutex_unlock(&holes_lock);
  free(real);
}

/* Whether the archive directory @dir lies under a trusted tree: a copy of
 * a replica, whose alive object may run ahead of the parts shipped (it is
 * uploaded after them, from the file as it is then), so that it does not
 * vouch for records there (docs/REPLICA.md). */
gboolean
archive_holes_trusted(const char *dir)
{
  char *real = realpath(dir, NULL);
  gboolean yes = FALSE;
  if (real == NULL)
    return FALSE;
  g_mutex_lock(&holes_lock);
  for (guint i = 0; holes_trees != NULL && i < holes_trees->len && !yes; i++) {
    const char *t = holes_trees->pdata[i];
    gsize n = strlen(t);
    yes = strncmp(real, t, n) == 0 && (real[n] == '/' || real[n] == '\0');
  }
  g_mutex_unlock(&holes_lock);
  free(real);
  return yes;
}

/* The holes a reader of a replica declared in segment @number: the file
 * "<N>.holes" beside it, one line "A B" (decimal) per byte range [A, B)
 * of the segment that no object of the replica held whole and good (a
 * part missing or damaged, docs/REPLICA.md), A and B on record
 * boundaries; B may lie past the end of the file (the bytes to the end
 * are lost). Read only when the archive lies under a tree a remote reader
 * of this process trusts (sqlenvfs_archive_trust_holes_under): a root's
 * own archive has none, and a stray one there is ignored, with a message.
 * (@say: as a message, else only as a debug line, for the refreshes after).
 * Returns the pairs (guint64 A, B, in file order), empty when there is no
 * such file; a line that does not parse ends the list (the segment then
 * stops at that hole). */
static GArray *
read_holes(const SqlenvfsArchive *a, guint64 number, gboolean say)
{
  GArray *out = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_autofree char *name = archive_seg_name(number, "holes");
  g_autofree char *path = g_build_filename(a->dir, name, NULL);
  g_autofree char *data = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents(path, &data, NULL, NULL))
    return out;
  if (!archive_holes_trusted(a->dir)) {
    g_log(G_LOG_DOMAIN, say ? G_LOG_LEVEL_MESSAGE : G_LOG_LEVEL_DEBUG,
          "archive %s: %s is not used: only a reader of a replica declares holes, in its own "
          "temporary tree (remove the file; `sqlenvfs verify` checks the segment)", a->dir, path);
    return out;
  }
  lines = g_strsplit(data, "\n", -1);
  for (char **l = lines; *l != NULL && **l != '\0'; l++) {
    guint64 ab[2];
    if (sscanf(*l, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, &ab[0], &ab[1]) != 2 ||
        ab[1] <= ab[0])
      break;
    g_array_append_vals(out, ab, 2);
  }
  return out;
}

/* Where the holes of @holes (read_holes) that contain byte @off (A <= @off
 * < B) end, following holes that touch or overlap: @off itself when no
 * hole contains it. */
static guint64
past_holes(const GArray *holes, guint64 off)
{
  gboolean moved = TRUE;
  while (moved) {
    moved = FALSE;
    for (guint i = 0; holes != NULL && i + 1 < holes->len; i += 2) {
      guint64 a = g_array_index(holes, guint64, i), b = g_array_index(holes, guint64, i + 1);
      if (a <= off && off < b) {
        off = b;
        moved = TRUE;
      }
    }
  }
  return off;
}

/* Where the first hole of @holes that starts after byte @off starts
 * (G_MAXUINT64: none): a record at @off must end at or before it. */
static guint64
next_hole(const GArray *holes, guint64 off)
{
  guint64 next = G_MAXUINT64;
  for (guint i = 0; holes != NULL && i + 1 < holes->len; i += 2)
    if (g_array_index(holes, guint64, i) > off)
      next = MIN(next, g_array_index(holes, guint64, i));
  return next;
}

/* Load the entries of segment @si starting at @from_offset with expected
 * sequence @from_seq: the index first, then a scan of the segment past the
 * last good index entry. Sets the segment's sealed/damaged state. In the
 * last segment, records that may not have been synced (is_unconfirmed) are
 * read in full: the first that is not whole ends the segment, as it ends it
 * for the writer's next start (a power cut can leave any part of the
 * unsynced tail unwritten, including the middle of a record). */
static gboolean
load_segment(SqlenvfsArchive *a, guint si, guint64 from_offset, guint64 from_seq,
             gboolean is_last, GError **error)
{
  SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
  SegFile sf;
  guint64 off = from_offset, seq = from_seq;
  gboolean sealed = FALSE, tail_bad = FALSE, lost_to_end = FALSE;
  g_autofree guint8 *chunk = NULL;
  g_autoptr(GArray) holes = NULL;
  /* The segment header lies in a declared hole: the records after the hole
   * are read, the first of them giving the segment's first seq. */
  gboolean head_lost = FALSE;

  if (!archive_seg_file_openat(a->dfd, a->dir, seg->number, O_RDONLY, &sf, error))
    return FALSE;
  seg->size = sf.size;
  if (!sf.hdr_ok) {
    holes = read_holes(a, seg->number, from_offset == 0);
    head_lost = past_holes(holes, 0) >= SEG_HEADER_SIZE;
    g_debug("archive %s: %s: %s%s", a->dir, sf.path, sf.hdr_why,
            head_lost ? " (in a declared hole: the records after it are read)" : "");
    if (!head_lost) {
      seg->is_damaged = TRUE;
      archive_seg_file_close(&sf);
      return TRUE;
    }
  } else {
    seg->first_seq = sf.hdr.first_seq;
    seg->created = sf.hdr.created;
  }
  if (off == 0) {
    off = SEG_HEADER_SIZE;
    seq = head_lost ? 0 : sf.hdr.first_seq;
  }

  /* The index, up to its first entry that is not the next record: past
   * that, only the segment is trusted (also on a refresh, which would
   * otherwise resume the index beyond the entry open stopped at). */
  if (from_offset == 0)
    a->is_last_index_bad = FALSE;
  if (!a->is_last_index_bad && !head_lost) {
    g_autofree char *iname = archive_seg_name(seg->number, "idx");
    g_autofree char *ipath = g_build_filename(a->dir, iname, NULL);
    int ifd = open(ipath, O_RDONLY | O_CLOEXEC);
    if (ifd >= 0) {
      guint8 ih[IDX_HEADER_SIZE];
      gsize got;
      struct stat st;
      if (fstat(ifd, &st) == 0 &&
          archive_pread_full(ifd, ih, sizeof ih, 0, &got, ipath, NULL) && got == sizeof ih &&
          archive_decode_idx_header(ih, seg->number)) {
        guint64 n = ((guint64)st.st_size - IDX_HEADER_SIZE) / IDX_ENTRY_SIZE;
        /* Skip the entries already loaded (refresh). */
        guint64 first = seq - sf.hdr.first_seq;
        /* Read in pieces: the entries are kept, not the file's bytes. */
        const guint64 per_read = IO_CHUNK / IDX_ENTRY_SIZE;
        g_autofree guint8 *buf = first < n ? g_malloc((gsize)(MIN(n - first, per_read) *
                                                              IDX_ENTRY_SIZE)) : NULL;
        /* Room for them at once, not grown (and copied) as they come. */
        if (first < n && n - first <= G_MAXUINT - a->entries->len) {
          guint len = a->entries->len;
          g_array_set_size(a->entries, len + (guint)(n - first));
          g_array_set_size(a->entries, len);
        }
        gboolean stop = FALSE;
        for (guint64 at = first; at < n && !stop && !sealed; at += per_read) {
          gsize len = (gsize)(MIN(n - at, per_read) * IDX_ENTRY_SIZE);
          if (!archive_pread_full(ifd, buf, len, IDX_HEADER_SIZE + at * IDX_ENTRY_SIZE, &got,
                                  ipath, NULL))
            break;
          stop = got < len;
          for (gsize i = 0; i + IDX_ENTRY_SIZE <= got; i += IDX_ENTRY_SIZE) {
            SqlenvfsArchiveEntry e;
            if (sealed)
              break;
            if (!archive_decode_idx_entry(buf + i, &e) || e.offset != off || e.seq != seq ||
                e.offset + e.length > sf.size) {
              a->is_last_index_bad = TRUE;
              stop = TRUE;
              break;
            }
            if (is_last && is_unconfirmed(a, &e) && !record_is_whole(&sf, &e, &chunk, error)) {
              if (error && *error) {
                close(ifd);
                archive_seg_file_close(&sf);
                return FALSE;
              }
              tail_bad = TRUE;
              stop = TRUE;
              break;
            }
            add_entry(a, &e, si);
            off += e.length;
            seq++;
            if (e.type == SQLENVFS_ARCHIVE_SEAL)
              sealed = TRUE;
          }
        }
      }
      close(ifd);
    }
  }

  /* Past the index: scan record headers (an unindexed tail, or a damaged
   * index). A declared hole (read_holes) that contains the offset is
   * stepped over: its bytes are never read, a record reaching into one is
   * not taken, and the records after it, whose seq jumps, follow a DAMAGED
   * gap (add_entry; invariant 2: never bridged). Bytes lost up to the end
   * of the segment (a hole with no record after it) end it damaged; in the
   * last segment, a DAMAGED gap after its last record says so (gap_at_end),
   * so that the times after that record are refused, never answered with
   * an older state. */
  if (!sealed && !tail_bad && holes == NULL)
    holes = read_holes(a, seg->number, from_offset == 0);
  while (!sealed && !tail_bad) {
    guint8 hdr[REC_HEADER_SIZE];
    gsize got;
    SqlenvfsArchiveEntry e;
    guint64 past = past_holes(holes, off);
    gboolean after_hole = past > off || seq == 0;
    if (past + REC_HEADER_SIZE > sf.size) {
      lost_to_end = past > off;
      break;
    }
    off = past;
    if (!archive_pread_full(sf.fd, hdr, sizeof hdr, off, &got, sf.path, error)) {
      archive_seg_file_close(&sf);
      return FALSE;
    }
    if (got < sizeof hdr || !archive_decode_header(hdr, &e) ||
        (after_hole ? e.seq < seq : e.seq != seq) || off + e.length > sf.size ||
        off + e.length > next_hole(holes, off))
      break;
    seq = e.seq;
    e.offset = off;
    if (is_last && is_unconfirmed(a, &e) && !record_is_whole(&sf, &e, &chunk, error)) {
      if (error && *error) {
        archive_seg_file_close(&sf);
        return FALSE;
      }
      break;
    }
    if (head_lost && seg->n_entries == 0)
      seg->first_seq = e.seq;
    add_entry(a, &e, si);
    off += e.length;
    seq++;
    if (e.type == SQLENVFS_ARCHIVE_SEAL)
      sealed = TRUE;
  }
  seg->is_sealed = sealed;
  /* Bytes left over: the unfinished tail of the segment being written is
   * expected; anywhere else it is damage. */
  if (!sealed && off < sf.size && !is_last)
    seg->is_damaged = TRUE;
  if (!sealed && !is_last)
    seg->is_damaged = TRUE;
  if (lost_to_end) {
    g_debug("archive %s: %s: bytes from %" G_GUINT64_FORMAT " to its end are in a declared "
            "hole", a->dir, sf.path, off);
    seg->is_damaged = TRUE;
    if (is_last)
      gap_at_end(a, si);
  } else if (is_last && !sealed && a->has_alive && seq != 0 && seq < a->alive_seq &&
             !archive_holes_trusted(a->dir)) {
    /* Records the alive file confirms as synced (it was read before this
     * file was) are not all here: the segment lost them (cut short, or a
     * record in the synced part damaged). No state after the last one read
     * is known, so none is given for a later time. */
    if (a->tail_lost_said != seq)
      g_message("archive segment %s: records %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                " were synced (the alive file says so) but are missing or unreadable from "
                "offset %" G_GUINT64_FORMAT " (run `sqlenvfs verify`)",
                sf.path, seq, a->alive_seq - 1, off);
    a->tail_lost_said = seq;
    a->tail_lost = TRUE;
    seg->is_damaged = TRUE;
    gap_at_end(a, si);
  }
  a->next_offset = off;
  archive_seg_file_close(&sf);
  return TRUE;
}

/* Summaries found not to match their segment's file, remembered for the
 * life of the process (a mount reads many states): the two files as they
 * were then. An archive opened later leaves such a summary unused, and
 * reads its segment from its index and records, while both files are
 * unchanged; once either changed (a summary written again, a segment put
 * back), the summary is tried again. Bounded like the records memo. */
typedef struct {
  SqlenvfsFileId sum, seg;
} SumMismatch;

static GMutex mismatch_lock;
static GHashTable *mismatches; /* summary path -> SumMismatch * */
static gint n_mismatches;      /* its size, read without the lock */

static gboolean
file_id_at(int dfd, const char *dir, guint64 number, const char *ext, SqlenvfsFileId *id)
{
  g_autofree char *name = archive_seg_name(number, ext);
  g_autofree char *path = dfd >= 0 ? NULL : g_build_filename(dir, name, NULL);
  struct stat st;
  if ((dfd >= 0 ? fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) : lstat(path, &st)) != 0)
    return FALSE;
  sqlenvfs_file_id_from_stat(&st, id);
  return TRUE;
}

/* Add @number to @bad (a restore's segments to compose from their records)
 * unless it is there or @bad is NULL. */
static void
add_bad(GArray *bad, guint64 number)
{
  for (guint k = 0; bad != NULL && k < bad->len; k++)
    if (g_array_index(bad, guint64, k) == number)
      return;
  if (bad != NULL)
    g_array_append_val(bad, number);
}

/* Segment @number of the archive at @dir (@dfd when >= 0) was found not to
 * match its summary (@why): logged, remembered in the process, and added
 * to @bad (the segments a restore composes again from their records) when
 * @bad is not NULL. */
static void
note_mismatch(int dfd, const char *dir, guint64 number, const char *seg_path, const char *why,
              GArray *bad)
{
  SumMismatch m;

  g_message("archive segment %s does not match its summary: %s (run `sqlenvfs verify`)",
            seg_path, why);
  if (file_id_at(dfd, dir, number, "sum", &m.sum) &&
      file_id_at(dfd, dir, number, "seg", &m.seg)) {
    g_mutex_lock(&mismatch_lock);
    if (mismatches == NULL || g_hash_table_size(mismatches) > 4096)
      g_clear_pointer(&mismatches, g_hash_table_destroy);
    if (mismatches == NULL)
      mismatches = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_hash_table_replace(mismatches, archive_summary_path(dir, number), g_memdup2(&m, sizeof m));
    g_atomic_int_set(&n_mismatches, (gint)g_hash_table_size(mismatches));
    g_mutex_unlock(&mismatch_lock);
  }
  add_bad(bad, number);
}

/* Whether the summary of segment @number was found not to match its
 * segment, and both files are as they were then (note_mismatch). */
static gboolean
mismatch_known(const SqlenvfsArchive *a, guint64 number)
{
  g_autofree char *path = NULL;
  SqlenvfsFileId sum, seg;
  const SumMismatch *m;
  gboolean known = FALSE;

  if (g_atomic_int_get(&n_mismatches) == 0)
    return FALSE;
  path = archive_summary_path(a->dir, number);
  g_mutex_lock(&mismatch_lock);
  m = mismatches != NULL ? g_hash_table_lookup(mismatches, path) : NULL;
  if (m != NULL) {
    known = file_id_at(a->dfd, a->dir, number, "sum", &sum) &&
            file_id_at(a->dfd, a->dir, number, "seg", &seg) &&
            sqlenvfs_file_id_equal(&sum, &m->sum) && sqlenvfs_file_id_equal(&seg, &m->seg);
    if (!known) {
      g_hash_table_remove(mismatches, path);
      g_atomic_int_set(&n_mismatches, (gint)g_hash_table_size(mismatches));
    }
  }
  g_mutex_unlock(&mismatch_lock);
  return known;
}

/* Use the summary of segment @si, a sealed segment that is not the last,
 * instead of its entries, when it is good (archive_summary.c, S1). FALSE
 * when there is none or it is not usable: load the entries then.
 *
 * The segment's own file is not opened here: its size, first seq, format
 * version and the checksum its SEAL carries are the summary's, and the
 * file is checked against them where a reader first reads it
 * (archive_seg_check(); docs/ARCHIVE.md, "When a sealed segment is
 * checked"). Opening every segment of a long archive was most of what
 * opening it cost. */
static gboolean
use_summary(SqlenvfsArchive *a, guint si)
{
  SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
  ArchiveSegSum *ss = &g_array_index(a->segsum, ArchiveSegSum, si);
  g_autofree guint8 *head = NULL;
  ArchiveSummary s;
  const char *why = NULL;

  if (mismatch_known(a, seg->number))
    return FALSE; /* read from its index and records, as in a restore */

  if (archive_summary_load_head_at(a->dfd, a->dir, seg->number, 0, 0, &s, &head, &why, NULL) !=
      ARCHIVE_SUM_GOOD) {
    if (why != NULL)
      g_debug("archive %s: the summary of %s is not used: %s", a->dir, seg->path, why);
    return FALSE;
  }
  seg->size = s.seg_size;
  seg->first_seq = s.first_seq;
  seg->created = 0; /* the header's, once the file is read */
  seg->is_sealed = TRUE;
  seg->n_entries = (guint)s.n_records;
  gap_before(a, s.first_seq, s.first_time, si);
  ss->is_summarized = TRUE;
  ss->s = s;
  ss->marks = g_new0(SqlenvfsArchiveEntry, MAX(s.n_marks, 1));
  for (guint i = 0; i < s.n_marks; i++) {
    /* checked by load_head (archive_summary_check_head) */
    gboolean decoded = archive_decode_idx_entry(head + s.marks_off + (gsize)i * IDX_ENTRY_SIZE,
                                                &ss->marks[i]);
    g_assert(decoded);
    ss->marks[i].segment = si;
  }
  /* No generation (a segment of GAP and OUTAGE records only): nothing to
   * copy, and the head may end where they would start. */
  ss->gens = s.n_gens > 0 ? g_memdup2(head + s.gens_off, (gsize)s.n_gens * ARCHIVE_SUM_GEN_SIZE)
                          : g_malloc0(1);
  memset(&a->sum_last, 0, sizeof a->sum_last);
  a->sum_last.type = SQLENVFS_ARCHIVE_SEAL;
  a->sum_last.seq = s.last_seq;
  a->sum_last.time = s.last_time;
  a->sum_last.reason = s.seal_crc;
  a->sum_last.offset = s.seg_size - REC_EMPTY_SIZE;
  a->sum_last.length = REC_EMPTY_SIZE;
  a->sum_last.segment = si;
  a->has_sum_last = TRUE;
  a->n_summarized++;
  return TRUE;
}

/* Whether the summary of segment @number is not to be used (no_sum_of). */
static gboolean
no_summary_for(const SqlenvfsArchive *a, guint64 number)
{
  for (guint k = 0; a->no_sum_of != NULL && k < a->no_sum_of->len; k++)
    if (g_array_index(a->no_sum_of, guint64, k) == number)
      return TRUE;
  return FALSE;
}

static ArchiveSegExpect
seg_expect(const SqlenvfsArchiveSegment *seg, const ArchiveSegSum *ss)
{
  return (ArchiveSegExpect){ seg->number, ss->s.seg_size, ss->s.first_seq, ss->s.seg_version,
                             ss->s.seal_crc };
}

/* archive_seg_check(); with @keep_fd, the descriptor the check opened is
 * kept for reading the segment's records (segment_fd()): only there, so
 * that composing many segments from their page maps does not hold a
 * descriptor for each here besides its record source's. */
static gboolean
seg_check(SqlenvfsArchive *a, guint si, gboolean keep_fd, GError **error)
{
  SqlenvfsArchiveSegment *seg;
  ArchiveSegSum *ss;

  if (si >= a->segsum->len)
    return TRUE;
  ss = segsum(a, si);
  if (!ss->is_summarized || ss->is_seg_checked)
    return TRUE;
  seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
  if (!ss->is_seg_bad) {
    ArchiveSegExpect x = seg_expect(seg, ss);
    const char *why = NULL;
    SegFile sf;
    if (!archive_seg_open_expect(a->dfd, a->dir, &x, &sf, &why, error))
      return FALSE;
    if (why == NULL) {
      int *fd = &g_array_index(a->fds, int, si);
      seg->created = sf.hdr.created;
      if (keep_fd && *fd < 0) {
        *fd = sf.fd; /* kept for reading its records */
        sf.fd = -1;
      }
      archive_seg_file_close(&sf);
      ss->is_seg_checked = TRUE;
      return TRUE;
    }
    ss->is_seg_bad = TRUE;
    ss->seg_why = why;
    note_mismatch(a->dfd, a->dir, seg->number, seg->path, why, NULL);
  }
  /* Found now or before (by a plan that read the segment with this
   * archive): the restore composing with it reads it from its records. */
  add_bad(a->deferred_bad_maps, seg->number);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "archive segment %s does not match its summary: %s; nothing is read from it "
              "through its summary (run `sqlenvfs verify`)",
              seg->path, ss->seg_why);
  return FALSE;
}

gboolean
archive_seg_check(SqlenvfsArchive *a, guint si, GError **error)
{
  return seg_check(a, si, FALSE, error);
}

/* The seq of the first record segment @si holds (0: none). */
static guint64
first_seq_loaded(const SqlenvfsArchive *a, guint si)
{
  const ArchiveSegSum *ss = &g_array_index(a->segsum, ArchiveSegSum, si);
  if (ss->is_summarized)
    return ss->s.first_seq;
  for (guint i = ss->start; i < a->entries->len; i++) {
    const SqlenvfsArchiveEntry *e = &g_array_index(a->entries, SqlenvfsArchiveEntry, i);
    if (e->seq != 0)
      return e->seq;
  }
  return 0;
}

/* Invariant 2 across segments: a segment's records come after those of
 * the segments before it. Records that go back can only be two histories
 * in one directory (segments of another root copied in); the searches by
 * seq would then find the wrong record, so nothing is read until they are
 * separated. */
static gboolean
check_seq_forward(const SqlenvfsArchive *a, guint si, guint64 prev_seq, GError **error)
{
  guint64 first = first_seq_loaded(a, si);
  const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
  if (prev_seq == 0 || first == 0 || first > prev_seq)
    return TRUE;
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "archive %s: %s starts at record %" G_GUINT64_FORMAT ", but the segments before "
              "it reach record %" G_GUINT64_FORMAT ": two histories are in one archive "
              "(segments of another root copied in?), and nothing is read from it until they "
              "are separated: move %s and the segments after it out of the directory (keep "
              "them), then run `sqlenvfs verify`", a->dir, seg->path, first, prev_seq,
              seg->path);
  return FALSE;
}

/* After the last segment listed is loaded: records the alive file confirms
 * as synced that no segment holds, because the last segment is gone
 * (deleted) or lost its header (emptied), which load_segment cannot see in
 * a file it does not read to its end. No state after the last record read
 * is known, so none is given for a later time (as load_segment does for a
 * segment cut short); the segment being started when the archiver stopped,
 * which holds no record the alive file confirms, is not this. */
static void
check_alive_tail(SqlenvfsArchive *a)
{
  const SqlenvfsArchiveEntry *last = last_real(a);
  guint si = a->segments->len;

  if (a->tail_lost || !a->has_alive || last == NULL || si == 0 ||
      last->seq + 1 >= a->alive_seq || archive_holes_trusted(a->dir))
    return;
  /* At debug level: the gap it leaves is what a refusal or list names. */
  if (a->tail_lost_said != last->seq + 1)
    g_debug("archive %s: records %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT " were synced "
            "(the alive file says so) but no segment holds them: the last segment after %s "
            "is missing or unreadable (run `sqlenvfs verify`)", a->dir, last->seq + 1,
            a->alive_seq - 1, g_array_index(a->segments, SqlenvfsArchiveSegment,
                                            last->segment).path);
  a->tail_lost_said = last->seq + 1;
  a->tail_lost = TRUE;
  g_array_index(a->segments, SqlenvfsArchiveSegment, si - 1).is_damaged = TRUE;
  gap_at_end(a, si - 1);
}

typedef struct {
  guint64 number, size, first_seq, n_records;
} SumClaim;

/* What the summaries in use say of their segments, in segment order. */
static GArray *
sum_claims(const SqlenvfsArchive *a)
{
  GArray *claims = g_array_new(FALSE, FALSE, sizeof(SumClaim));
  for (guint si = 0; si < a->segments->len; si++) {
    const ArchiveSegSum *ss = &g_array_index(a->segsum, ArchiveSegSum, si);
    SumClaim c = { g_array_index(a->segments, SqlenvfsArchiveSegment, si).number,
                   ss->s.seg_size, ss->s.first_seq, ss->s.n_records };
    if (ss->is_summarized)
      g_array_append_val(claims, c);
  }
  return claims;
}

/* Segment @si, just read from its index and records where a summary had
 * answered for it (@claims), when what it holds is not what the summary
 * said: the summary is not used again while both files are as they are
 * (note_mismatch), so that an archive opened later reads the segment as
 * this load did (and refuses what it refuses). */
static void
check_claim(SqlenvfsArchive *a, guint si, const GArray *claims)
{
  const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
  guint lo = 0, hi = claims->len;
  const SumClaim *c;

  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;
    if (g_array_index(claims, SumClaim, mid).number < seg->number)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == claims->len)
    return;
  c = &g_array_index(claims, SumClaim, lo);
  if (c->number != seg->number ||
      (seg->size == c->size && seg->first_seq == c->first_seq &&
       seg->n_entries == c->n_records && seg->is_sealed && !seg->is_damaged))
    return;
  g_autofree char *why =
    g_strdup_printf("it holds %u records from record %" G_GUINT64_FORMAT " in %"
                    G_GUINT64_FORMAT " bytes%s, its summary says %" G_GUINT64_FORMAT
                    " from %" G_GUINT64_FORMAT " in %" G_GUINT64_FORMAT " bytes",
                    seg->n_entries, seg->first_seq, seg->size,
                    seg->is_sealed && !seg->is_damaged ? "" : " (not sealed whole)",
                    c->n_records, c->first_seq, c->size);
  note_mismatch(a->dfd, a->dir, seg->number, seg->path, why, NULL);
}

/* Forget segment @si, the last one loaded, and what loading it added
 * (its entries, a DAMAGED gap before them, its summary), restoring the
 * last summarized SEAL known before it (@sum_last, @has_sum_last). */
static void
unload_last(SqlenvfsArchive *a, guint si, const SqlenvfsArchiveEntry *sum_last,
            gboolean has_sum_last)
{
  const ArchiveSegSum *ss = &g_array_index(a->segsum, ArchiveSegSum, si);
  int fd = g_array_index(a->fds, int, si);

  g_assert(si + 1 == a->segments->len);
  if (fd >= 0)
    close(fd);
  if (ss->is_summarized)
    a->n_summarized--;
  g_array_set_size(a->entries, ss->start);
  g_array_set_size(a->segsum, si);
  g_array_set_size(a->fds, si);
  g_array_set_size(a->segments, si);
  a->sum_last = *sum_last;
  a->has_sum_last = has_sum_last;
  a->cache_si = G_MAXUINT;
}

/* Load segments @nums from the @start-th on. With @claims (sum_claims()),
 * each segment read in full is checked against what its summary said. */
static gboolean
load_from(SqlenvfsArchive *a, GArray *nums, guint start, const GArray *claims, GError **error)
{
  for (guint k = start; k < nums->len; k++) {
    SqlenvfsArchiveSegment seg = { 0 };
    ArchiveSegSum ss = { 0 };
    g_autofree char *name = archive_seg_name(g_array_index(nums, guint64, k), "seg");
    const SqlenvfsArchiveEntry *prev = last_real(a);
    guint64 prev_seq = prev != NULL ? prev->seq : 0;
    const SqlenvfsArchiveEntry sum_last = a->sum_last;
    const gboolean has_sum_last = a->has_sum_last;
    GError *local = NULL;
    int fd = -1;
    guint si;
    seg.number = g_array_index(nums, guint64, k);
    seg.path = g_build_filename(a->dir, name, NULL);
    g_array_append_val(a->segments, seg);
    g_array_append_val(a->fds, fd);
    ss.start = a->entries->len;
    g_array_append_val(a->segsum, ss);
    si = a->segments->len - 1;
    if ((a->no_sums || k + 1 == nums->len || no_summary_for(a, seg.number) ||
         !use_summary(a, si)) &&
        !load_segment(a, si, 0, 0, k + 1 == nums->len, &local)) {
      /* The first one listed, gone when read: a prune, which removes
       * segments from the first on, removed it meanwhile. As though it had
       * not been listed. */
      if (si == 0 && k + 1 < nums->len &&
          g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND)) {
        g_debug("archive %s: %s (pruned meanwhile)", a->dir, local->message);
        g_clear_error(&local);
        g_array_set_size(a->segments, 0);
        g_array_set_size(a->fds, 0);
        g_array_set_size(a->segsum, 0);
        continue;
      }
      g_propagate_error(error, local);
      return FALSE;
    }
    g_array_index(a->segsum, ArchiveSegSum, si).end = a->entries->len;
    if (claims != NULL && !g_array_index(a->segsum, ArchiveSegSum, si).is_summarized)
      check_claim(a, si, claims);
    /* What is loaded stays one history: a refresh that continues after a
     * failed one never finds the refused segment's records among it. */
    if (!check_seq_forward(a, si, prev_seq, error)) {
      unload_last(a, si, &sum_last, has_sum_last);
      return FALSE;
    }
  }
  check_alive_tail(a);
  if (a->segments->len > 0)
    g_array_index(a->segsum, ArchiveSegSum, a->segments->len - 1).end = a->entries->len;
  return TRUE;
}

/* Forget everything loaded (the segments, their entries and summaries). */
static void
reset(SqlenvfsArchive *a)
{
  for (guint i = 0; i < a->fds->len; i++)
    if (g_array_index(a->fds, int, i) >= 0)
      close(g_array_index(a->fds, int, i));
  g_array_set_size(a->fds, 0);
  g_array_set_size(a->segments, 0);
  g_array_set_size(a->entries, 0);
  g_array_set_size(a->segsum, 0);
  a->n_summarized = 0;
  a->n_idx_open = 0;
  a->has_sum_last = FALSE;
  a->tail_lost = FALSE;
  a->cache_si = G_MAXUINT;
  g_array_set_size(a->cache, 0);
  g_clear_pointer(&a->marks, g_array_unref);
  a->checked_batch_seg = 0;
}

/* Load every entry into @entries, summaries or not (the global entry list
 * was asked for). On an I/O error the archive is left as far as it was
 * loaded, and a warning says so. */
static void
ensure_all(SqlenvfsArchive *a)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) nums = NULL;
  g_autoptr(GArray) claims = NULL;
  gboolean loaded;
  if (a->n_summarized == 0)
    return;
  g_debug("archive %s: loading every index entry", a->dir);
  a->no_sums = TRUE;
  claims = sum_claims(a);
  nums = archive_list_segments(a->dir, &error);
  reset(a);
  loaded = nums != NULL && load_from(a, nums, 0, claims, &error);
  if (!loaded) {
    g_warning("archive %s: loading every index entry: %s", a->dir, error->message);
    return;
  }
  /* What check_records found (remembered in the process) holds again. */
  if (a->is_checked && sqlenvfs_archive_check_records(a, NULL, &error) < 0)
    g_warning("archive %s: checking its records: %s", a->dir, error->message);
}

/* The alive file, read before the segments are listed: every record it
 * confirms is in a segment listed after it, even while the archiver seals
 * and starts new ones (check_alive_tail). A test may widen the time
 * between the two (testhooks.h). */
static void
load_alive(SqlenvfsArchive *a)
{
  a->has_alive = archive_read_alive(a->dir, &a->alive_file, &a->alive_seq);
  if (sqlenvfs_testhook_archive_open_delay_ms() > 0)
    g_usleep((gulong)sqlenvfs_testhook_archive_open_delay_ms() * 1000);
}

SqlenvfsArchive *
sqlenvfs_archive_open(const char *dir, GError **error)
{
  return archive_open_except(dir, NULL, error);
}

SqlenvfsArchive *
archive_open_except(const char *dir, const GArray *no_summary, GError **error)
{
  g_autoptr(SqlenvfsArchive) a = g_new0(SqlenvfsArchive, 1);
  g_autoptr(GArray) nums = NULL;

  a->dir = g_strdup(dir);
  if (no_summary != NULL && no_summary->len > 0) {
    a->no_sum_of = g_array_sized_new(FALSE, FALSE, sizeof(guint64), no_summary->len);
    g_array_append_vals(a->no_sum_of, no_summary->data, no_summary->len);
  }
  /* Each segment and summary is opened by name in this descriptor: a
   * path walk of the whole directory path for each of them was a good
   * part of opening a long archive. */
  a->dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  a->segments = g_array_new(FALSE, TRUE, sizeof(SqlenvfsArchiveSegment));
  g_array_set_clear_func(a->segments, (GDestroyNotify)segment_clear);
  a->fds = g_array_new(FALSE, FALSE, sizeof(int));
  a->entries = g_array_new(FALSE, FALSE, sizeof(SqlenvfsArchiveEntry));
  a->segsum = g_array_new(FALSE, TRUE, sizeof(ArchiveSegSum));
  g_array_set_clear_func(a->segsum, (GDestroyNotify)segsum_clear);
  a->cache = g_array_new(FALSE, FALSE, sizeof(SqlenvfsArchiveEntry));
  a->cache_si = G_MAXUINT;
  a->is_sparse = TRUE;
  a->idx_open_max = IDX_OPEN_MAX;
  /* A segment listed, then gone when it is read, was removed by a prune
   * meanwhile, which removes them from the first on: list again, for as
   * long as the first segment listed moves on (the prune goes on). */
  for (guint64 first = 0;;) {
    g_autoptr(GError) local = NULL;
    load_alive(a);
    nums = archive_list_segments(dir, error);
    if (nums == NULL)
      return NULL;
    if (load_from(a, nums, 0, NULL, &local))
      break;
    if (nums->len == 0 || g_array_index(nums, guint64, 0) <= first ||
        !g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND)) {
      g_propagate_error(error, g_steal_pointer(&local));
      return NULL;
    }
    first = g_array_index(nums, guint64, 0);
    g_debug("archive %s: %s; listing it again", dir, local->message);
    reset(a);
    g_clear_pointer(&nums, g_array_unref);
  }
  a->just_listed = TRUE;
  return g_steal_pointer(&a);
}

/* The segment numbers of @a's directory for a refresh. Right after the
 * open listed them (a refresh that follows an open, so that nothing
 * appended in between is missed), only whether a segment was added after
 * the last is asked, not the whole directory listed again; any later
 * refresh lists it. */
static GArray *
refresh_list(SqlenvfsArchive *a, GError **error)
{
  gboolean just_listed = a->just_listed;
  guint n = a->segments->len;
  GArray *nums;
  struct stat st;

  a->just_listed = FALSE;
  if (just_listed && a->dfd >= 0 && n > 0) {
    g_autofree char *next =
      archive_seg_name(g_array_index(a->segments, SqlenvfsArchiveSegment, n - 1).number + 1, "seg");
    /* ... and whether the first is still there (segments are pruned from
     * the front). */
    if (fstatat(a->dfd, next, &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT &&
        fstatat(a->dfd, seg_base(&g_array_index(a->segments, SqlenvfsArchiveSegment, 0)), &st,
                AT_SYMLINK_NOFOLLOW) == 0) {
      nums = g_array_sized_new(FALSE, FALSE, sizeof(guint64), n);
      for (guint si = 0; si < n; si++)
        g_array_append_val(nums, g_array_index(a->segments, SqlenvfsArchiveSegment, si).number);
      return nums;
    }
  }
  return archive_list_segments(a->dir, error);
}

gboolean
sqlenvfs_archive_refresh(SqlenvfsArchive *a, GError **error)
{
  g_autoptr(GArray) nums = NULL;
  guint n_old = a->segments->len;
  const SqlenvfsArchiveEntry *last;

  load_alive(a);
  nums = refresh_list(a, error);
  if (nums == NULL)
    return FALSE;
  g_clear_pointer(&a->marks, g_array_unref);
  /* Segments removed at the front (prune), synced records found missing
   * from the last segment (the archiver's next start cuts it back and
   * archives them again), or anything unexpected: reload. */
  if (n_old == 0 || nums->len < n_old || a->tail_lost ||
      g_array_index(nums, guint64, 0) != g_array_index(a->segments, SqlenvfsArchiveSegment, 0).number ||
      g_array_index(nums, guint64, n_old - 1) !=
        g_array_index(a->segments, SqlenvfsArchiveSegment, n_old - 1).number) {
    reset(a);
    if (!load_from(a, nums, 0, NULL, error))
      return FALSE;
    return TRUE;
  }
  /* Continue the last known segment, then load new ones. */
  {
    SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, n_old - 1);
    if (!seg->is_sealed && !seg->is_damaged) {
      last = last_real(a);
      if (last && last->segment == n_old - 1) {
        if (!load_segment(a, n_old - 1, last->offset + last->length, last->seq + 1,
                          nums->len == n_old, error))
          return FALSE;
      } else if (!load_segment(a, n_old - 1, 0, 0, nums->len == n_old, error)) {
        return FALSE;
      }
      g_array_index(a->segsum, ArchiveSegSum, n_old - 1).end = a->entries->len;
    }
  }
  if (!load_from(a, nums, n_old, NULL, error))
    return FALSE;
  return TRUE;
}

/* One entry of sqlenvfs_archive_alive()'s walk back: TRUE when it ends
 * the walk (the last COMMIT or GAP). */
static gboolean
alive_entry(const SqlenvfsArchiveEntry *e, gint64 *alive, guint64 *next_seq)
{
  if (e->seq != 0 && *next_seq == 1)
    *next_seq = e->seq + 1;
  if (e->type == SQLENVFS_ARCHIVE_COMMIT) {
    *alive = MAX(*alive, e->aux_time);
    return TRUE;
  }
  if (e->type == SQLENVFS_ARCHIVE_GAP) {
    if (e->reason != SQLENVFS_GAP_DAMAGED)
      *alive = MAX(*alive, e->time);
    return TRUE;
  }
  return FALSE;
}

static gboolean alive_in(SqlenvfsArchive *a, guint si, gint64 *alive, guint64 *next_seq,
                         gboolean *any);

gint64
sqlenvfs_archive_alive(const SqlenvfsArchive *a)
{
  SqlenvfsArchive *w = (SqlenvfsArchive *)a;
  gint64 alive = 0;
  guint64 next_seq = 1;
  gboolean done = FALSE, any = FALSE;
  for (guint si = a->segments->len; si > 0 && !done; si--) {
    ArchiveSegSum *ss = segsum(a, si - 1);
    /* Its records from the end, then the DAMAGED gap before a summarized
     * segment, if any. */
    done = alive_in(w, si - 1, &alive, &next_seq, &any);
    if (!done && ss->is_summarized && ss->end > ss->start) {
      any = TRUE;
      for (guint i = ss->end; i > ss->start && !done; i--)
        done = alive_entry(&g_array_index(a->entries, SqlenvfsArchiveEntry, i - 1), &alive,
                           &next_seq);
    }
  }
  /* The alive file speaks for the archive only when it names the record
   * right after the last one: one that names an earlier record was read
   * before the records after it were appended (their own times then say
   * more), or is another archive's (a copy's, put over this one's on a
   * replica: its time, later than this archive's last record, would claim
   * capture complete up to a time whose commits this archive lacks); one
   * that names a later record runs ahead of what is here (a replica's,
   * before the parts are shipped). */
  if (a->has_alive && a->alive_seq == next_seq && any)
    alive = MAX(alive, a->alive_file);
  return alive;
}

guint64
sqlenvfs_archive_durable_seq(const SqlenvfsArchive *a)
{
  return a->has_alive ? a->alive_seq : 0;
}

gint
sqlenvfs_archive_find_time(const SqlenvfsArchive *a, gint64 time)
{
  guint lo = 0, hi;
  ensure_all((SqlenvfsArchive *)a);
  hi = a->entries->len; /* first entry with time > @time */
  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;
    if (g_array_index(a->entries, SqlenvfsArchiveEntry, mid).time <= time)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (gint)lo - 1;
}

/* ------------------------------------------------------------------ */
/* Sparse reading (archive.h), segment by segment: a summarized segment
 * answers from its summary's small parts where they suffice (bounds,
 * marks, generations, counts) and reads its index otherwise
 * (archive_seg_view()); any other segment from its entries in memory. */

/* Index in @v (@n entries: real ones in seq order, synthetic ones, seq 0,
 * between) of the real entry @seq, or -1. */
static gint
find_seq(const SqlenvfsArchiveEntry *v, guint n, guint64 seq)
{
  guint lo = 0, hi = n;
  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2, m = mid;
    while (m < hi && v[m].seq == 0)
      m++;
    if (m == hi) {
      hi = mid;
      continue;
    }
    if (v[m].seq == seq)
      return (gint)m;
    if (v[m].seq < seq)
      lo = m + 1;
    else
      hi = mid;
  }
  return -1;
}

gint
archive_index_of_seq(const SqlenvfsArchive *a, guint64 seq)
{
  return find_seq((const SqlenvfsArchiveEntry *)a->entries->data, a->entries->len, seq);
}

static ArchiveSegSum *
segsum(const SqlenvfsArchive *a, guint si)
{
  return &g_array_index(a->segsum, ArchiveSegSum, si);
}

const SqlenvfsArchiveEntry *
archive_seg_view(SqlenvfsArchive *a, guint si, guint *n)
{
  ArchiveSegSum *ss = segsum(a, si);

  if (!ss->is_summarized) {
    *n = ss->end - ss->start;
    return *n > 0 ? (const SqlenvfsArchiveEntry *)a->entries->data + ss->start : NULL;
  }
  if (a->cache_si != si) {
    /* Its index (or a scan of its records when the index is bad), loaded
     * as open loads a segment, into the cache: each entry checked against
     * the segment file as it is (its header and size, read here), so that
     * this needs no check against the summary (a read of a record does:
     * segment_fd()). */
    SqlenvfsArchive t = { 0 };
    g_autoptr(GError) error = NULL;
    SqlenvfsArchiveSegment seg = g_array_index(a->segments, SqlenvfsArchiveSegment, si);
    t.dir = a->dir;
    t.dfd = a->dfd;
    t.segments = g_array_new(FALSE, TRUE, sizeof(SqlenvfsArchiveSegment));
    seg.n_entries = 0;
    g_array_append_val(t.segments, seg);
    g_array_set_size(a->cache, 0);
    t.entries = a->cache;
    if (!load_segment(&t, 0, 0, 0, FALSE, &error)) {
      /* Gone since it was listed: removed by a prune meanwhile (its reader
       * reads the archive again, sqlenvfs_timeline_open()). */
      if (g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND))
        g_debug("archive %s: reading the index of %s: %s", a->dir, seg.path, error->message);
      else
        g_warning("archive %s: reading the index of %s: %s", a->dir, seg.path, error->message);
    }
    a->cache = t.entries;
    g_array_free(t.segments, TRUE);
    for (guint i = 0; i < a->cache->len; i++)
      g_array_index(a->cache, SqlenvfsArchiveEntry, i).segment = si;
    a->cache_si = si;
    a->n_view_loads++;
  }
  *n = a->cache->len;
  return (const SqlenvfsArchiveEntry *)a->cache->data;
}

void
archive_set_sparse(SqlenvfsArchive *a, gboolean sparse)
{
  a->is_sparse = sparse;
}

/* Index entries read at once when a call walks a summarized segment's
 * index (7 KiB of it): memory stays flat however long the segment. */
#define IDX_READ_ENTRIES 64

/* The index of the summarized segment @si, opened and its header checked
 * when first needed: -1 when it is not to be read entry by entry (then
 * the whole view answers: archive_seg_view(), which scans the records
 * when the index is bad). */
static int
idx_fd(SqlenvfsArchive *a, guint si)
{
  ArchiveSegSum *ss = segsum(a, si);
  const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);

  if (!a->is_sparse || !ss->is_summarized || ss->idx_bad)
    return -1;
  if (!ss->idx_open && a->n_idx_open >= a->idx_open_max) {
    for (guint sj = 0; sj < a->segsum->len; sj++) {
      ArchiveSegSum *o = segsum(a, sj);
      if (o->idx_open && o->idx_fd >= 0) {
        close(o->idx_fd);
        o->idx_open = FALSE;
        g_clear_pointer(&o->idx_path, g_free);
      }
    }
    a->n_idx_open = 0;
  }
  if (!ss->idx_open) {
    g_autofree char *iname = archive_seg_name(seg->number, "idx");
    guint8 ih[IDX_HEADER_SIZE];
    gsize got;
    struct stat st;
    ss->idx_open = TRUE;
    ss->idx_path = g_build_filename(a->dir, iname, NULL);
    ss->idx_fd = open(ss->idx_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (ss->idx_fd < 0 || fstat(ss->idx_fd, &st) != 0 ||
        (guint64)st.st_size < IDX_HEADER_SIZE + ss->s.n_records * IDX_ENTRY_SIZE ||
        !archive_pread_full(ss->idx_fd, ih, sizeof ih, 0, &got, ss->idx_path, NULL) ||
        got != sizeof ih || !archive_decode_idx_header(ih, seg->number)) {
      g_debug("archive %s: %s is not read entry by entry: %s", a->dir, ss->idx_path,
              ss->idx_fd < 0 ? g_strerror(errno) : "its header or size is not right");
      if (ss->idx_fd >= 0)
        close(ss->idx_fd);
      ss->idx_fd = -1;
      ss->idx_bad = TRUE;
      return -1;
    }
    a->n_idx_open++;
  }
  return ss->idx_fd;
}

/* Entries @k .. @k + @count - 1 (@count <= IDX_READ_ENTRIES) of the
 * summarized segment @si from its index into @out, each checked as a
 * reader that loads the whole index checks it: its checksum, its seq
 * (first_seq + k: none missing or repeated), its record where the record
 * before it ends (so one entry before and one after them are read too;
 * the first at the segment's header, the last the SEAL that ends the
 * segment), and its time inside the summary's. FALSE when any is not right
 * (or the index cannot be read): the index is not read entry by entry
 * again (idx_fd() -1), and the caller asks the whole view. */
static gboolean
idx_read(SqlenvfsArchive *a, guint si, guint64 k, guint count, SqlenvfsArchiveEntry *out)
{
  ArchiveSegSum *ss = segsum(a, si);
  const ArchiveSummary *s = &ss->s;
  guint8 raw[(IDX_READ_ENTRIES + 2) * IDX_ENTRY_SIZE];
  guint64 from = k > 0 ? k - 1 : 0, to = MIN(k + count + 1, s->n_records);
  gsize len = (gsize)(to - from) * IDX_ENTRY_SIZE, got = 0;
  int fd = idx_fd(a, si);
  const char *why = NULL;
  guint64 at = k, end = SEG_HEADER_SIZE; /* where the record at @at must start */

  g_assert(count <= IDX_READ_ENTRIES);
  if (fd < 0)
    return FALSE;
  if (k + count > s->n_records)
    why = "past the segment's records";
  else if (!archive_pread_full(fd, raw, len, IDX_HEADER_SIZE + from * IDX_ENTRY_SIZE, &got,
                               ss->idx_path, NULL) ||
           got != len)
    why = "cannot be read";
  for (at = from; at < to && why == NULL; at++) {
    SqlenvfsArchiveEntry one, *e = at >= k && at < k + count ? &out[at - k] : &one;
    if (!archive_decode_idx_entry(raw + (gsize)(at - from) * IDX_ENTRY_SIZE, e))
      why = "fails its checksum";
    else if (e->seq != s->first_seq + at)
      why = "is not the record it stands for";
    else if (e->offset < SEG_HEADER_SIZE || e->length < REC_EMPTY_SIZE ||
             e->offset + e->length > s->seg_size || e->offset + e->length < e->offset ||
             ((at == 0 || at > from) && e->offset != end) ||
             (at + 1 == s->n_records &&
              (e->type != SQLENVFS_ARCHIVE_SEAL || e->offset + e->length != s->seg_size)))
      why = "does not name the record after the one before it";
    else if (e->time < s->first_time || e->time > s->last_time)
      why = "has a time outside the segment's";
    if (why != NULL)
      break;
    e->segment = si;
    end = e->offset + e->length;
  }
  if (why != NULL) {
    g_debug("archive %s: %s: entry %" G_GUINT64_FORMAT " %s; its whole index is read instead",
            a->dir, ss->idx_path, at, why);
    ss->idx_bad = TRUE;
    return FALSE;
  }
  return TRUE;
}

/* Walking one segment's entries, k = 0 .. n - 1: read from the index of a
 * summarized segment a chunk at a time, or from its whole view (any other
 * segment, or one whose index failed a check). A failed read sets @failed:
 * the caller starts over with seg_cursor(), which then gives the view. */
typedef struct {
  SqlenvfsArchive *a;
  guint si;
  gboolean sparse;               /* read from the index, else from @v     */
  const SqlenvfsArchiveEntry *v; /* the whole view                          */
  guint64 n;
  SqlenvfsArchiveEntry buf[IDX_READ_ENTRIES];
  guint64 buf_at;
  guint buf_n;
  gboolean failed;
} SegCursor;

static void
seg_cursor(SqlenvfsArchive *a, guint si, SegCursor *c)
{
  c->a = a;
  c->si = si;
  c->buf_n = 0;
  c->failed = FALSE;
  c->sparse = idx_fd(a, si) >= 0;
  if (c->sparse) {
    c->v = NULL;
    c->n = segsum(a, si)->s.n_records;
  } else {
    guint n;
    c->v = archive_seg_view(a, si, &n);
    c->n = n;
  }
}

/* Entry @k of the walk (NULL: c->failed); @dir says which way the walk
 * goes (-1 back, 1 forward, 0 a single probe), so that a chunk read holds
 * the entries it asks next. Valid until the next call. */
static const SqlenvfsArchiveEntry *
cursor_at(SegCursor *c, guint64 k, int dir)
{
  guint64 from;
  guint count;

  g_assert(k < c->n);
  if (!c->sparse)
    return &c->v[k];
  if (c->buf_n > 0 && k >= c->buf_at && k < c->buf_at + c->buf_n)
    return &c->buf[k - c->buf_at];
  if (dir == 0) {
    from = k;
    count = 1;
  } else if (dir > 0) {
    from = k;
    count = (guint)MIN(c->n - k, IDX_READ_ENTRIES);
  } else {
    from = k + 1 >= IDX_READ_ENTRIES ? k + 1 - IDX_READ_ENTRIES : 0;
    count = (guint)(k + 1 - from);
  }
  c->buf_n = 0;
  if (!idx_read(c->a, c->si, from, count, c->buf)) {
    c->failed = TRUE;
    return NULL;
  }
  c->buf_at = from;
  c->buf_n = count;
  return &c->buf[k - from];
}

/* sqlenvfs_archive_alive() in the records of segment @si, from its end
 * (a summarized segment's read from its index a chunk at a time). */
static gboolean
alive_in(SqlenvfsArchive *a, guint si, gint64 *alive, guint64 *next_seq, gboolean *any)
{
  const gint64 alive0 = *alive;
  const guint64 next0 = *next_seq;
  gboolean done;
  SegCursor c;

  do {
    *alive = alive0;
    *next_seq = next0;
    done = FALSE;
    seg_cursor(a, si, &c);
    *any = *any || c.n > 0;
    for (guint64 i = c.n; i > 0 && !done; i--) {
      const SqlenvfsArchiveEntry *e = cursor_at(&c, i - 1, -1);
      if (e == NULL)
        break;
      done = alive_entry(e, alive, next_seq);
    }
  } while (c.failed);
  return done;
}

/* The entry @seq of segment @si (NULL: the segment has none): one index
 * entry of a summarized segment, read into *@buf, or its place in the
 * view (valid until the view changes). */
static const SqlenvfsArchiveEntry *
seg_entry_at(SqlenvfsArchive *a, guint si, guint64 seq, SqlenvfsArchiveEntry *buf)
{
  const SqlenvfsArchiveEntry *v;
  guint n;
  gint i;

  /* Entry by entry from the index unless the whole view is in memory. */
  if (a->cache_si != si && idx_fd(a, si) >= 0) {
    const ArchiveSummary *s = &segsum(a, si)->s;
    if (seq < s->first_seq || seq > s->last_seq)
      return NULL;
    if (idx_read(a, si, seq - s->first_seq, 1, buf))
      return buf;
  }
  v = archive_seg_view(a, si, &n);
  i = find_seq(v, n, seq);
  return i < 0 ? NULL : &v[i];
}

/* The entry @seq of segment @si into *@out (FALSE: the segment has none). */
static gboolean
seg_entry(SqlenvfsArchive *a, guint si, guint64 seq, SqlenvfsArchiveEntry *out)
{
  const SqlenvfsArchiveEntry *e = seg_entry_at(a, si, seq, out);
  if (e != NULL && e != out)
    *out = *e;
  return e != NULL;
}

/* The first and last seq of segment @si's records (FALSE: it has none). */
static gboolean
seg_bounds(SqlenvfsArchive *a, guint si, guint64 *first, guint64 *last)
{
  ArchiveSegSum *ss = segsum(a, si);
  const SqlenvfsArchiveEntry *v;
  guint n;
  gboolean found = FALSE;

  *first = *last = 0;
  if (ss->is_summarized) {
    *first = ss->s.first_seq;
    *last = ss->s.last_seq;
    return TRUE;
  }
  v = archive_seg_view(a, si, &n);
  for (guint i = 0; i < n && !found; i++)
    if (v[i].seq != 0) {
      *first = v[i].seq;
      found = TRUE;
    }
  for (guint i = n; i > 0 && found; i--)
    if (v[i - 1].seq != 0) {
      *last = v[i - 1].seq;
      break;
    }
  return found;
}

static void
build_marks(SqlenvfsArchive *a)
{
  guint64 last = 0;
  if (a->marks != NULL)
    return;
  a->marks = g_array_new(FALSE, FALSE, sizeof(ArchiveMark));
  for (guint si = 0; si < a->segments->len; si++) {
    ArchiveSegSum *ss = segsum(a, si);
    for (guint i = ss->start; i < ss->end; i++) {
      const SqlenvfsArchiveEntry *e = &g_array_index(a->entries, SqlenvfsArchiveEntry, i);
      if (e->type == SQLENVFS_ARCHIVE_GAP || e->type == SQLENVFS_ARCHIVE_OUTAGE) {
        ArchiveMark m = { *e, e->seq != 0 ? e->seq - 1 : last };
        g_array_append_val(a->marks, m);
      }
      if (e->seq != 0)
        last = e->seq;
    }
    if (ss->is_summarized) {
      for (guint i = 0; i < ss->s.n_marks; i++) {
        ArchiveMark m = { ss->marks[i], ss->marks[i].seq - 1 };
        g_array_append_val(a->marks, m);
      }
      last = ss->s.last_seq;
    }
  }
}

guint
sqlenvfs_archive_n_marks(const SqlenvfsArchive *a)
{
  build_marks((SqlenvfsArchive *)a);
  return a->marks->len;
}

const SqlenvfsArchiveEntry *
sqlenvfs_archive_mark(const SqlenvfsArchive *a, guint k, guint64 *after_seq)
{
  const ArchiveMark *m;
  build_marks((SqlenvfsArchive *)a);
  g_return_val_if_fail(k < a->marks->len, NULL);
  m = &g_array_index(a->marks, ArchiveMark, k);
  if (after_seq)
    *after_seq = m->after;
  return &m->e;
}

gboolean
sqlenvfs_archive_bounds(const SqlenvfsArchive *a, guint64 *first_seq, guint64 *last_seq)
{
  SqlenvfsArchive *w = (SqlenvfsArchive *)a;
  guint64 f, l;
  gboolean found = FALSE;
  for (guint si = 0; si < a->segments->len && !found; si++)
    if (seg_bounds(w, si, &f, &l)) {
      found = TRUE;
      if (first_seq)
        *first_seq = f;
    }
  for (guint si = a->segments->len; si > 0 && found; si--)
    if (seg_bounds(w, si - 1, &f, &l)) {
      if (last_seq)
        *last_seq = l;
      break;
    }
  return found;
}

guint64
sqlenvfs_archive_next_seq(const char *dir)
{
  return sqlenvfs_archive_next_seq_crc(dir, NULL, NULL);
}

guint64
sqlenvfs_archive_next_seq_crc(const char *dir, gboolean *has_last_crc, guint32 *last_crc)
{
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autoptr(GError) error = NULL;
  SqlenvfsArchiveEntry e;
  guint64 first, last;

  if (has_last_crc != NULL)
    *has_last_crc = FALSE;
  if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
    return 0;
  a = sqlenvfs_archive_open(dir, &error);
  if (a == NULL) {
    g_debug("archive %s: %s (its next record number is not known)", dir, error->message);
    return 0;
  }
  if (!sqlenvfs_archive_bounds(a, &first, &last))
    return 0;
  if (has_last_crc != NULL && sqlenvfs_archive_get(a, last, &e)) {
    *has_last_crc = TRUE;
    *last_crc = sqlenvfs_archive_entry_header_crc(&e);
  }
  return last + 1;
}

char *
sqlenvfs_archive_pin_misplaced(SqlenvfsArchive *a, guint64 state_seq, guint64 before,
                               guint64 after)
{
  guint64 n = 0;

  if (after != 0 && state_seq >= after)
    return g_strdup_printf("record %" G_GUINT64_FORMAT " was archived after the pin (record %"
                           G_GUINT64_FORMAT " on)", state_seq, after);
  if (before > state_seq + 1)
    sqlenvfs_archive_count_commits(a, state_seq, before - 1, &n, NULL, NULL);
  if (n > 0)
    return g_strdup_printf("%" G_GUINT64_FORMAT " commit(s) after record %" G_GUINT64_FORMAT
                           " were archived before the pin (below record %" G_GUINT64_FORMAT
                           ")", n, state_seq, before);
  return NULL;
}

/* The segment that holds record @seq if any record does (G_MAXUINT). */
static guint
seg_of_seq(SqlenvfsArchive *a, guint64 seq)
{
  for (guint si = a->segments->len; si > 0; si--) {
    guint64 f, l;
    if (!seg_bounds(a, si - 1, &f, &l))
      continue;
    if (seq > l)
      return G_MAXUINT;
    if (seq >= f)
      return si - 1;
  }
  return G_MAXUINT;
}

gboolean
sqlenvfs_archive_get(SqlenvfsArchive *a, guint64 seq, SqlenvfsArchiveEntry *out)
{
  guint si = seq == 0 ? G_MAXUINT : seg_of_seq(a, seq);
  return si != G_MAXUINT && seg_entry(a, si, seq, out);
}

/* The walk's range of entries k for the records (@after_seq, @upto_seq]:
 * in an index read entry by entry, entry k is record first_seq + k, so
 * only those are read; a view is walked whole (its entries filtered by
 * seq as they come). */
static void
cursor_range(const SegCursor *c, guint64 after_seq, guint64 upto_seq, guint64 *k0, guint64 *k1)
{
  guint64 first = segsum(c->a, c->si)->s.first_seq;
  *k0 = 0;
  *k1 = c->n;
  if (!c->sparse)
    return;
  if (after_seq >= first)
    *k0 = MIN(after_seq - first + 1, c->n);
  if (upto_seq < first)
    *k1 = 0;
  else if (upto_seq - first < c->n)
    *k1 = upto_seq - first + 1;
}

/* last_state() in one segment: 1 found (*out), 0 none (a record before
 * @min_seq was reached), -1 not in this segment (or c->failed). */
static int
last_state_in(SegCursor *c, gint64 time, guint64 min_seq, guint64 max_seq,
              SqlenvfsArchiveEntry *out)
{
  guint64 lo = 0, hi = c->n, k0, k1; /* the first entry with time > @time */
  while (lo < hi) {
    guint64 mid = lo + (hi - lo) / 2;
    const SqlenvfsArchiveEntry *e = cursor_at(c, mid, 0);
    if (e == NULL)
      return -1;
    if (e->time <= time)
      lo = mid + 1;
    else
      hi = mid;
  }
  /* Entries after @max_seq are passed over: not read from an index. */
  cursor_range(c, 0, max_seq, &k0, &k1);
  for (guint64 i = MIN(lo, k1); i > 0; i--) {
    const SqlenvfsArchiveEntry *e = cursor_at(c, i - 1, -1);
    if (e == NULL)
      return -1;
    if (e->seq == 0 || e->seq > max_seq)
      continue;
    if (e->seq < min_seq)
      return 0;
    if (sqlenvfs_archive_entry_is_state(e)) {
      *out = *e;
      return 1;
    }
  }
  return -1;
}

gboolean
sqlenvfs_archive_last_state(SqlenvfsArchive *a, gint64 time, guint64 min_seq, guint64 max_seq,
                            SqlenvfsArchiveEntry *out)
{
  for (guint si = a->segments->len; si > 0; si--) {
    ArchiveSegSum *ss = segsum(a, si - 1);
    SegCursor c;
    int r;
    if (ss->is_summarized) {
      if (ss->s.first_seq > max_seq || ss->s.first_time > time)
        continue;
      if (ss->s.last_seq < min_seq)
        return FALSE;
    }
    do {
      seg_cursor(a, si - 1, &c);
      r = last_state_in(&c, time, min_seq, max_seq, out);
    } while (c.failed);
    if (r >= 0)
      return r == 1;
  }
  return FALSE;
}

static gboolean
gens_may_hold(const ArchiveSegSum *ss, guint32 salt1, guint32 salt2, guint32 frame)
{
  for (guint i = 0; i < ss->s.n_gens; i++) {
    const guint8 *g = ss->gens + (gsize)i * ARCHIVE_SUM_GEN_SIZE;
    if (get32(g) == salt1 && get32(g + 4) == salt2 && get32(g + 24) <= frame &&
        frame <= get32(g + 28))
      return TRUE;
  }
  return FALSE;
}

static gboolean
commit_is(const SqlenvfsArchiveEntry *e, guint32 salt1, guint32 salt2, guint32 frame,
          guint32 cksum1, guint32 cksum2)
{
  return e->type == SQLENVFS_ARCHIVE_COMMIT && e->commit_frame == frame && e->salt1 == salt1 &&
         e->salt2 == salt2 && e->cksum1 == cksum1 && e->cksum2 == cksum2;
}

/* find_commit() in the summarized segment read from its index
 * (c->sparse): a generation run holds consecutive COMMITs of one WAL generation
 * with increasing commit frames, so the runs of that generation whose
 * frames span @frame are searched by frame (other records between its
 * COMMITs passed over), the last run first, as the view is searched from
 * its end. 1 found, 0 not in this segment, -1 c->failed (or an entry that
 * does not agree with the run: the view decides). */
static int
find_commit_in_runs(SegCursor *c, guint32 salt1, guint32 salt2, guint32 frame, guint32 cksum1,
                    guint32 cksum2, guint64 max_seq, SqlenvfsArchiveEntry *out)
{
  ArchiveSegSum *ss = segsum(c->a, c->si);
  for (guint r = ss->s.n_gens; r > 0; r--) {
    const guint8 *g = ss->gens + (gsize)(r - 1) * ARCHIVE_SUM_GEN_SIZE;
    guint64 lo, hi;
    if (get32(g) != salt1 || get32(g + 4) != salt2 || frame < get32(g + 24) ||
        frame > get32(g + 28) || get64(g + 8) > max_seq)
      continue;
    lo = get64(g + 8) - ss->s.first_seq;
    hi = get64(g + 16) - ss->s.first_seq + 1;
    while (lo < hi) {
      guint64 mid = lo + (hi - lo) / 2, m = mid;
      const SqlenvfsArchiveEntry *e = cursor_at(c, m, 0);
      while (e != NULL && e->type != SQLENVFS_ARCHIVE_COMMIT && ++m < hi)
        e = cursor_at(c, m, 1);
      if (e == NULL)
        return -1;
      if (m == hi) {
        hi = mid;
        continue;
      }
      if (e->salt1 != salt1 || e->salt2 != salt2) {
        c->failed = TRUE; /* not the run the summary describes */
        segsum(c->a, c->si)->idx_bad = TRUE;
        return -1;
      }
      if (e->commit_frame == frame) {
        if (!commit_is(e, salt1, salt2, frame, cksum1, cksum2) || e->seq > max_seq)
          break; /* the run's one COMMIT at @frame is another transaction, or past */
        *out = *e;
        return 1;
      }
      if (e->commit_frame < frame)
        lo = m + 1;
      else
        hi = mid;
    }
  }
  return 0;
}

gboolean
sqlenvfs_archive_find_commit(SqlenvfsArchive *a, guint32 salt1, guint32 salt2, guint32 frame,
                             guint32 cksum1, guint32 cksum2, SqlenvfsArchiveEntry *out)
{
  return sqlenvfs_archive_find_commit_upto(a, salt1, salt2, frame, cksum1, cksum2, G_MAXUINT64,
                                           out);
}

gboolean
sqlenvfs_archive_find_commit_upto(SqlenvfsArchive *a, guint32 salt1, guint32 salt2,
                                  guint32 frame, guint32 cksum1, guint32 cksum2,
                                  guint64 max_seq, SqlenvfsArchiveEntry *out)
{
  for (guint si = a->segments->len; si > 0; si--) {
    ArchiveSegSum *ss = segsum(a, si - 1);
    SegCursor c;
    if (ss->is_summarized && !gens_may_hold(ss, salt1, salt2, frame))
      continue;
    seg_cursor(a, si - 1, &c);
    if (c.sparse) {
      int r = find_commit_in_runs(&c, salt1, salt2, frame, cksum1, cksum2, max_seq, out);
      if (r >= 0) {
        if (r == 1)
          return TRUE;
        continue;
      }
      seg_cursor(a, si - 1, &c); /* the view, now */
    }
    for (guint64 i = c.n; i > 0; i--) {
      const SqlenvfsArchiveEntry *e = &c.v[i - 1];
      if (e->seq <= max_seq && commit_is(e, salt1, salt2, frame, cksum1, cksum2)) {
        *out = *e;
        return TRUE;
      }
    }
  }
  return FALSE;
}

/* Walk @v from @from on as generation_end does: TRUE when the walk
 * stopped (a synthetic entry, past @max_seq, a COMMIT of another
 * generation), FALSE when it ran off the end. *@out_seq: the last COMMIT
 * of the generation seen. */
static gboolean
walk_generation(const SqlenvfsArchiveEntry *v, guint n, guint from, const SqlenvfsArchiveEntry *st,
                guint64 max_seq, guint64 *out_seq)
{
  for (guint i = from; i < n; i++) {
    const SqlenvfsArchiveEntry *e = &v[i];
    if (e->seq == 0 || e->seq > max_seq)
      return TRUE;
    if (e->type != SQLENVFS_ARCHIVE_COMMIT)
      continue;
    if (e->salt1 != st->salt1 || e->salt2 != st->salt2)
      return TRUE;
    *out_seq = e->seq;
  }
  return FALSE;
}

/* walk_generation() over the records after @after of the summarized
 * segment @si, from its generation runs: a run of @st's generation
 * wholly at or before @max_seq ends at its last COMMIT; one cut by
 * @max_seq is read from the index backwards from there to its last COMMIT
 * at or before it. 1 stopped, 0 ran off the end, -1 the index failed. */
static int
walk_generation_runs(SqlenvfsArchive *a, guint si, guint64 after, const SqlenvfsArchiveEntry *st,
                     guint64 max_seq, guint64 *out_seq)
{
  ArchiveSegSum *ss = segsum(a, si);
  for (guint r = 0; r < ss->s.n_gens; r++) {
    const guint8 *g = ss->gens + (gsize)r * ARCHIVE_SUM_GEN_SIZE;
    guint64 first = get64(g + 8), last = get64(g + 16), from;
    SegCursor c;
    if (last <= after)
      continue;
    /* Its first COMMIT after @after stops the walk: past @max_seq, or of
     * another generation. */
    if (first > max_seq || get32(g) != st->salt1 || get32(g + 4) != st->salt2)
      return 1;
    if (last <= max_seq) {
      *out_seq = last;
      continue;
    }
    seg_cursor(a, si, &c);
    if (!c.sparse)
      return -1;
    from = MAX(first, after + 1);
    for (guint64 s = max_seq; s >= from; s--) {
      const SqlenvfsArchiveEntry *e = cursor_at(&c, s - ss->s.first_seq, -1);
      if (e == NULL)
        return -1;
      if (e->type == SQLENVFS_ARCHIVE_COMMIT) {
        if (e->salt1 != st->salt1 || e->salt2 != st->salt2) {
          ss->idx_bad = TRUE; /* not the run the summary describes */
          return -1;
        }
        *out_seq = e->seq;
        break;
      }
    }
    return 1;
  }
  /* Past its last run: other records, the walk stopped by @max_seq if one
   * is after it. */
  return ss->s.last_seq > max_seq ? 1 : 0;
}

/* walk_generation() over segment @si's records after seq @after (0: all
 * of them): 1 stopped, 0 ran off the end, -1 the segment does not hold
 * @after. */
static int
seg_walk_generation(SqlenvfsArchive *a, guint si, guint64 after, const SqlenvfsArchiveEntry *st,
                    guint64 max_seq, guint64 *out_seq)
{
  const SqlenvfsArchiveEntry *v;
  guint64 was = *out_seq;
  guint n;
  gint from = 0;

  if (a->is_sparse && segsum(a, si)->is_summarized) {
    int r = walk_generation_runs(a, si, after, st, max_seq, out_seq);
    if (r >= 0)
      return r;
    *out_seq = was;
  }
  v = archive_seg_view(a, si, &n);
  if (after != 0) {
    from = find_seq(v, n, after);
    if (from < 0)
      return -1;
    from++;
  }
  return walk_generation(v, n, (guint)from, st, max_seq, out_seq) ? 1 : 0;
}

gboolean
sqlenvfs_archive_generation_end(SqlenvfsArchive *a, guint64 seq, guint64 max_seq,
                                SqlenvfsArchiveEntry *out)
{
  guint si = seq == 0 ? G_MAXUINT : seg_of_seq(a, seq);
  SqlenvfsArchiveEntry st;
  guint64 out_seq;
  int r;

  if (si == G_MAXUINT || !seg_entry(a, si, seq, &st))
    return FALSE;
  out_seq = st.seq;
  r = seg_walk_generation(a, si, st.seq, &st, max_seq, &out_seq);
  if (r < 0)
    return FALSE;
  for (guint sj = si + 1; r == 0 && sj < a->segments->len; sj++) {
    ArchiveSegSum *ss = segsum(a, sj);
    if (ss->is_summarized && ss->start < ss->end)
      break; /* a DAMAGED gap before it */
    r = seg_walk_generation(a, sj, 0, &st, max_seq, &out_seq);
  }
  if (out_seq == st.seq) {
    *out = st;
    return TRUE;
  }
  return sqlenvfs_archive_get(a, out_seq, out);
}

/* The COMMITs of entries [@k0, @k1) of the walk: their number, bytes and
 * the size after the last (*@db_pages, when there is one). */
static void
count_in(SegCursor *c, guint64 k0, guint64 k1, guint64 after_seq, guint64 upto_seq, guint64 *n,
         guint64 *bytes, guint32 *db_pages)
{
  *n = *bytes = 0;
  for (guint64 i = k0; i < k1; i++) {
    const SqlenvfsArchiveEntry *e = cursor_at(c, i, 1);
    if (e == NULL)
      return;
    if (e->type != SQLENVFS_ARCHIVE_COMMIT || e->seq <= after_seq || e->seq > upto_seq)
      continue;
    (*n)++;
    *bytes += e->length;
    *db_pages = e->db_pages;
  }
}

/* count_commits() in the part (@after_seq, @upto_seq] of the summarized
 * segment read from its index (c->sparse), reading the fewer entries: those
 * of the part, or those outside it (taken from the summary's counts), and
 * then back from the part's end to its last COMMIT for the size. */
static void
count_part(SegCursor *c, guint64 after_seq, guint64 upto_seq, guint64 *n, guint64 *bytes,
           guint32 *db_pages)
{
  const ArchiveSummary *s = &segsum(c->a, c->si)->s;
  guint64 k0, k1, n_out, b_out, n_end, b_end;
  guint32 ignored;

  cursor_range(c, after_seq, upto_seq, &k0, &k1);
  if (k1 - k0 <= c->n - (k1 - k0)) {
    count_in(c, k0, k1, after_seq, upto_seq, n, bytes, db_pages);
    return;
  }
  count_in(c, 0, k0, 0, G_MAXUINT64, &n_out, &b_out, &ignored);
  if (c->failed)
    return;
  count_in(c, k1, c->n, 0, G_MAXUINT64, &n_end, &b_end, &ignored);
  if (c->failed)
    return;
  if (n_out + n_end > s->n_commits || b_out + b_end > s->commit_bytes) {
    /* the index does not agree with the summary: the view decides */
    segsum(c->a, c->si)->idx_bad = TRUE;
    c->failed = TRUE;
    return;
  }
  *n = s->n_commits - n_out - n_end;
  *bytes = s->commit_bytes - b_out - b_end;
  if (*n == 0)
    return;
  if (k1 == c->n) {
    *db_pages = s->last_db_pages;
    return;
  }
  for (guint64 i = k1; i > k0; i--) {
    const SqlenvfsArchiveEntry *e = cursor_at(c, i - 1, -1);
    if (e == NULL)
      return;
    if (e->type == SQLENVFS_ARCHIVE_COMMIT) {
      *db_pages = e->db_pages;
      return;
    }
  }
}

void
sqlenvfs_archive_count_commits(SqlenvfsArchive *a, guint64 after_seq, guint64 upto_seq,
                               guint64 *n_commits, guint64 *bytes, guint32 *db_pages)
{
  guint64 n = 0, b = 0;
  for (guint si = 0; si < a->segments->len; si++) {
    ArchiveSegSum *ss = segsum(a, si);
    SegCursor c;
    guint64 sn, sb, k0, k1;
    guint32 last_db = 0;
    if (ss->is_summarized) {
      if (ss->s.last_seq <= after_seq || ss->s.first_seq > upto_seq)
        continue;
      if (ss->s.first_seq > after_seq && ss->s.last_seq <= upto_seq) {
        n += ss->s.n_commits;
        b += ss->s.commit_bytes;
        if (db_pages && ss->s.n_commits > 0)
          *db_pages = ss->s.last_db_pages;
        continue;
      }
    }
    do {
      seg_cursor(a, si, &c);
      if (c.sparse) {
        count_part(&c, after_seq, upto_seq, &sn, &sb, &last_db);
      } else {
        cursor_range(&c, after_seq, upto_seq, &k0, &k1);
        count_in(&c, k0, k1, after_seq, upto_seq, &sn, &sb, &last_db);
      }
    } while (c.failed);
    n += sn;
    b += sb;
    if (db_pages && sn > 0)
      *db_pages = last_db;
  }
  if (n_commits)
    *n_commits = n;
  if (bytes)
    *bytes = b;
}

static int
segment_fd(SqlenvfsArchive *a, guint si, GError **error)
{
  int *fd = &g_array_index(a->fds, int, si);
  if (*fd < 0) {
    const char *path = g_array_index(a->segments, SqlenvfsArchiveSegment, si).path;
    /* A summarized segment is checked first (and opened by the check). */
    if (!seg_check(a, si, TRUE, error))
      return -1;
    if (*fd >= 0)
      return *fd;
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
      sqlenvfs_error_errno(error, errno, "open archive segment", path);
      return -1;
    }
  }
  return *fd;
}

/* The most a record walk's window holds (see SqlenvfsArchive); its first
 * refill reads RECORD_WINDOW_MIN bytes (or the record), each later one
 * twice as many as the one before. */
#define RECORD_WINDOW (1u << 20)
#define RECORD_WINDOW_MIN (64u * 1024)

void
archive_record_walk_begin(SqlenvfsArchive *a, guint si, guint64 lo, guint64 hi)
{
  a->rwalk = TRUE;
  a->rwalk_seg = si;
  a->rwalk_lo = lo;
  a->rwalk_hi = hi;
  a->rwin_len = 0;
  a->rwin_grow = 0;
}

/* The window's bytes are of the file as it was during the walk: they are
 * not kept after it, and the batch checked in walk mode (by frames only)
 * is not taken for one decompressed. */
void
archive_record_walk_end(SqlenvfsArchive *a)
{
  a->rwalk = FALSE;
  a->rwin_len = 0;
  a->rwin_cap = 0;
  g_clear_pointer(&a->rwin, g_free);
  a->checked_batch_seg = 0;
}

/* Bytes [@off, @off + @len) of segment @si (open on @fd) into @buf, *got
 * of them (fewer: the file ends before). Within the range of a record walk,
 * through its window: a refill going forward starts at @off, one going
 * backward (the bytes are before the window) ends at @off + @len, so that
 * the records the walk takes next are in it, and none reads outside the
 * range. */
static gboolean
record_bytes(SqlenvfsArchive *a, guint si, int fd, const char *path, guint8 *buf, gsize len,
             guint64 off, gsize *got, GError **error)
{
  guint64 start, end;
  gsize want, n = 0;

  if (!a->rwalk || si != a->rwalk_seg || off < a->rwalk_lo || off + len > a->rwalk_hi ||
      len > RECORD_WINDOW)
    return archive_pread_full(fd, buf, len, off, got, path, error);
  if (a->rwin_len == 0 || off < a->rwin_off || off + len > a->rwin_off + a->rwin_len) {
    gboolean backward = a->rwin_len > 0 && off < a->rwin_off;
    want = MAX(len, MAX(RECORD_WINDOW_MIN, a->rwin_grow));
    want = (gsize)MIN((guint64)MIN(want, RECORD_WINDOW), a->rwalk_hi - a->rwalk_lo);
    start = backward ? MAX(a->rwalk_lo, off + len - MIN((guint64)want, off + len)) : off;
    end = MIN(start + want, a->rwalk_hi);
    if (a->rwin_cap < want) {
      g_free(a->rwin);
      a->rwin = g_malloc(want);
      a->rwin_cap = want;
    }
    a->rwin_len = 0;
    if (!archive_pread_full(fd, a->rwin, (gsize)(end - start), start, &n, path, error))
      return FALSE;
    a->rwin_off = start;
    a->rwin_len = n;
    a->rwin_grow = MIN(2 * want, RECORD_WINDOW);
  }
  *got = off >= a->rwin_off + a->rwin_len
           ? 0
           : (gsize)MIN((guint64)len, a->rwin_off + a->rwin_len - off);
  memcpy(buf, a->rwin + (off - a->rwin_off), *got);
  return TRUE;
}

/* Read the record @e whole into @rec (e->length bytes) from @fd (segment
 * e->segment) and check its header against @e, its checksum and its page
 * numbers. Returns its page numbers (newly allocated), or NULL and *error
 * naming @path. */
static guint32 *
read_whole_record(SqlenvfsArchive *a, int fd, const char *path, const SqlenvfsArchiveEntry *e,
                  guint8 *rec, GError **error)
{
  g_autofree guint32 *pgnos = NULL;
  SqlenvfsArchiveEntry disk;
  gsize got;

  if (!record_bytes(a, e->segment, fd, path, rec, e->length, e->offset, &got, error))
    return NULL;
  if (got < e->length) {
    archive_corrupt(error, path, e, "is cut short (the file is truncated)");
    return NULL;
  }
  if (!archive_decode_header(rec, &disk) || !archive_same_header(&disk, e)) {
    archive_corrupt(error, path, e, "has a header that does not match its index entry");
    return NULL;
  }
  if (get32(rec + e->length - 4) != REC_END_MAGIC ||
      get32(rec + e->length - REC_TRAILER_SIZE) != crc(0, rec, e->length - REC_TRAILER_SIZE)) {
    archive_corrupt(error, path, e, "fails its checksum");
    return NULL;
  }
  pgnos = g_new(guint32, MAX(e->n_pages, 1));
  for (guint32 i = 0; i < e->n_pages; i++) {
    pgnos[i] = get32(rec + REC_HEADER_SIZE + 4 * i);
    if (pgnos[i] == 0) {
      archive_corrupt(error, path, e, "lists page number 0");
      return NULL;
    }
  }
  return g_steal_pointer(&pgnos);
}

/* Version 2: read the compressed COMMIT @e whole and check it: its header
 * against @e, its checksum, its page numbers, its blocks (check_blocks).
 * Returns the page numbers, and the pages in *@pages when it is not NULL. */
static guint32 *
read_compressed(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e, guint8 **pages,
                GError **error)
{
  const char *path = g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path;
  int fd = segment_fd(a, e->segment, error);
  g_autofree guint8 *rec = NULL;
  g_autofree guint8 *out = NULL;
  g_autofree guint32 *pgnos = NULL;
  const char *why;

  if (fd < 0)
    return NULL;
  rec = g_try_malloc(e->length);
  if (rec == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "read archive segment %s: no memory for record %" G_GUINT64_FORMAT
                " (%" G_GUINT64_FORMAT " bytes)", path, e->seq, e->length);
    return NULL;
  }
  pgnos = read_whole_record(a, fd, path, e, rec, error);
  if (pgnos == NULL)
    return NULL;
  if (pages != NULL) {
    out = g_try_malloc(MAX((gsize)archive_stream_pages(e) * e->page_size, 1));
    if (out == NULL) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                  "read archive segment %s: no memory for the %u pages of record %" G_GUINT64_FORMAT,
                  path, e->n_pages, e->seq);
      return NULL;
    }
  }
  if (pages == NULL && a->rwalk) {
    why = archive_check_block_frames(e, rec);
  } else {
    if (a->dctx == NULL)
      a->dctx = ZSTD_createDCtx();
    g_assert(a->dctx != NULL); /* fails only for lack of memory, as g_malloc would */
    why = archive_check_blocks(e, rec, out, a->dctx);
  }
  if (why != NULL) {
    archive_corrupt(error, path, e, why);
    return NULL;
  }
  if (pages != NULL)
    *pages = g_steal_pointer(&out);
  return g_steal_pointer(&pgnos);
}

const SqlenvfsArchiveEntry *
sqlenvfs_archive_batch_first(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e, guint32 *first)
{
  const SqlenvfsArchiveEntry *h;
  guint64 want;

  g_return_val_if_fail(e->flags & SQLENVFS_ARCHIVE_BATCHED, NULL);
  if (e->reason == 0 || e->seq <= e->reason || e->segment >= a->segments->len)
    return NULL;
  want = e->seq - e->reason;
  /* In the same segment (a batch is written whole into one). */
  h = seg_entry_at(a, e->segment, want, &a->batch_head);
  if (h == NULL)
    return NULL;
  if (h->type != SQLENVFS_ARCHIVE_COMMIT || h->segment != e->segment ||
      !(h->flags & SQLENVFS_ARCHIVE_COMPRESSED) ||
      (guint64)e->text_len + e->n_pages > archive_stream_pages(h))
    return NULL;
  *first = e->text_len;
  return h;
}

/* A commit of a batch: read its own record whole and check it, then the
 * batch's first record, which holds its pages (checked once per batch when
 * only checking: @pages NULL). */
static guint32 *
read_member(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e, guint8 **pages, GError **error)
{
  const char *path = g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path;
  int fd = segment_fd(a, e->segment, error);
  g_autofree guint8 *rec = NULL;
  g_autofree guint32 *pgnos = NULL;
  g_autofree guint32 *hp = NULL;
  g_autofree guint8 *all = NULL;
  const SqlenvfsArchiveEntry *h;
  guint32 first = 0;

  if (fd < 0)
    return NULL;
  rec = g_malloc(e->length);
  pgnos = read_whole_record(a, fd, path, e, rec, error);
  if (pgnos == NULL)
    return NULL;
  h = sqlenvfs_archive_batch_first(a, e, &first);
  if (h == NULL) {
    archive_corrupt(error, path, e, "belongs to a batch whose first record, which holds its pages, is "
            "missing or does not match");
    return NULL;
  }
  if (pages == NULL && a->checked_batch_seg == h->segment + 1 &&
      a->checked_batch_off == h->offset)
    return g_steal_pointer(&pgnos);
  hp = read_compressed(a, h, pages ? &all : NULL, error);
  if (hp == NULL)
    return NULL;
  a->checked_batch_seg = h->segment + 1;
  a->checked_batch_off = h->offset;
  if (pages != NULL) {
    *pages = g_memdup2(all + (gsize)first * e->page_size, MAX((gsize)e->n_pages * e->page_size, 1));
  }
  return g_steal_pointer(&pgnos);
}

guint32 *
sqlenvfs_archive_read_commit(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e,
                             guint64 *data_offset, GError **error)
{
  const char *path;
  int fd;
  gsize list_len, got;
  g_autofree guint8 *head = NULL;
  g_autofree guint8 *chunk = NULL;
  g_autofree guint32 *pgnos = NULL;
  SqlenvfsArchiveEntry disk;
  guint32 c;
  guint64 pos, end;
  guint8 trailer[REC_TRAILER_SIZE];

  g_return_val_if_fail(e->type == SQLENVFS_ARCHIVE_COMMIT, NULL);
  if (e->flags & SQLENVFS_ARCHIVE_COMPRESSED) {
    *data_offset = 0;
    return read_compressed(a, e, NULL, error);
  }
  if (e->flags & SQLENVFS_ARCHIVE_BATCHED) {
    *data_offset = 0;
    return read_member(a, e, NULL, error);
  }
  path = g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path;
  fd = segment_fd(a, e->segment, error);
  if (fd < 0)
    return NULL;
  list_len = 4 * (gsize)e->n_pages;
  head = g_malloc(REC_HEADER_SIZE + list_len);
  if (!archive_pread_full(fd, head, REC_HEADER_SIZE + list_len, e->offset, &got, path, error))
    return NULL;
  if (got < REC_HEADER_SIZE + list_len) {
    archive_corrupt(error, path, e, "is cut short (the file is truncated)");
    return NULL;
  }
  if (!archive_decode_header(head, &disk) || !archive_same_header(&disk, e)) {
    archive_corrupt(error, path, e, "has a header that does not match its index entry");
    return NULL;
  }
  c = crc(0, head, REC_HEADER_SIZE + list_len);
  pgnos = g_new(guint32, MAX(e->n_pages, 1));
  for (guint32 i = 0; i < e->n_pages; i++) {
    pgnos[i] = get32(head + REC_HEADER_SIZE + 4 * i);
    if (pgnos[i] == 0) {
      archive_corrupt(error, path, e, "lists page number 0");
      return NULL;
    }
  }
  chunk = g_malloc(IO_CHUNK);
  pos = e->offset + REC_HEADER_SIZE + list_len;
  end = e->offset + e->length - REC_TRAILER_SIZE;
  while (pos < end) {
    gsize want = (gsize)MIN((guint64)IO_CHUNK, end - pos);
    if (!archive_pread_full(fd, chunk, want, pos, &got, path, error))
      return NULL;
    if (got < want) {
      archive_corrupt(error, path, e, "is cut short (the file is truncated)");
      return NULL;
    }
    c = crc(c, chunk, want);
    pos += want;
  }
  if (!archive_pread_full(fd, trailer, sizeof trailer, end, &got, path, error))
    return NULL;
  if (got < sizeof trailer || get32(trailer + 4) != REC_END_MAGIC || get32(trailer) != c) {
    archive_corrupt(error, path, e, "fails its checksum");
    return NULL;
  }
  *data_offset = e->offset + REC_HEADER_SIZE + list_len;
  return g_steal_pointer(&pgnos);
}

guint32 *
sqlenvfs_archive_read_commit_pages(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e,
                                   guint8 **pages, GError **error)
{
  g_autofree guint32 *pgnos = NULL;
  g_autofree guint8 *out = NULL;
  guint64 data = 0;
  gsize len = (gsize)e->n_pages * e->page_size, got;
  int fd;

  g_return_val_if_fail(e->type == SQLENVFS_ARCHIVE_COMMIT, NULL);
  if (e->flags & SQLENVFS_ARCHIVE_BATCHED)
    return read_member(a, e, pages, error);
  if (e->flags & SQLENVFS_ARCHIVE_COMPRESSED) {
    /* Only its own pages (a batch's first record holds others after). */
    g_autofree guint8 *all = NULL;
    g_autofree guint32 *own = read_compressed(a, e, &all, error);
    if (own == NULL)
      return NULL;
    if (archive_stream_pages(e) == e->n_pages)
      *pages = g_steal_pointer(&all);
    else
      *pages = g_memdup2(all, MAX((gsize)e->n_pages * e->page_size, 1));
    return g_steal_pointer(&own);
  }
  pgnos = sqlenvfs_archive_read_commit(a, e, &data, error);
  if (pgnos == NULL)
    return NULL;
  fd = segment_fd(a, e->segment, error);
  if (fd < 0)
    return NULL;
  out = g_malloc(MAX(len, 1));
  if (!archive_pread_full(fd, out, len, data, &got,
                  g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path, error))
    return NULL;
  if (got < len) {
    archive_corrupt(error, g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path, e,
            "is cut short (the file is truncated)");
    return NULL;
  }
  *pages = g_steal_pointer(&out);
  return g_steal_pointer(&pgnos);
}

/* ------------------------------------------------------------------ */
/* Compressed records as a source of page images (version 2)           */

/* What a page read needs of a registered record (the page size is the
 * source's): 24 bytes a record. */
typedef struct {
  guint64 offset, length;
  guint32 n_pages;   /* in its blocks (archive_stream_pages())         */
  guint32 own_pages; /* its own: the page numbers it lists             */
} SrcRecord;

struct _SqlenvfsArchiveRecordSource {
  char *path;
  int fd;            /* -1 until first needed when @is_lazy                    */
  /* A segment whose file the archive did not open (it took the segment
   * from its summary): opened and checked against @expect at the first
   * read (archive_record_source_fd()), so that a restore starts writing
   * before it opens any segment. @open_error: why that failed (kept:
   * every later read fails the same way). */
  gboolean is_lazy;
  ArchiveSegExpect expect_seg;
  char *dir;
  GArray *bad;       /* the archive's deferred_bad_maps (not owned), or NULL  */
  GError *open_error;
  GMutex open_lock;
  guint64 id;        /* names its blocks in a thread's block cache             */
  guint32 page_size;
  GArray *records;   /* SrcRecord, in the order first registered               */
  GArray *refs;      /* guint64 per registered page: record index << 32 | page */
  /* The block table of the record last read, as byte offsets of blocks. */
  gint64 table_rec;
  GArray *starts;    /* guint64 per block + 1: offset of block j in the record */
  GArray *crcs;      /* guint32 per block: its crc32                           */
  GArray *expect;    /* SrcExpect per registered page, or NULL (below)         */
};

/* A page registered from a page map not yet checked against the records
 * (archive_record_source_expect): the first read of it checks first that
 * the page list at @list_off names @pgno. */
typedef struct {
  guint64 list_off;
  guint32 pgno;
  gboolean is_checked;
} SrcExpect;

/* The blocks last read, decompressed, shared by all the sources a thread
 * reads: a restore has a source per segment its pages come from, and its
 * memory must not grow with their number. A few blocks, so that pages read
 * in turn from a few records do not decompress the same block again. */
#define SRC_CACHE_SLOTS 4
typedef struct {
  guint64 src_id;    /* 0: empty                                               */
  guint32 ri, block;
  guint64 used;      /* when it was last used (the oldest is refilled)         */
  guint8 *buf;
  gsize cap;
} SrcBlock;

/* What a source needs only while it reads a block (the zstd context, the
 * compressed bytes, the blocks last read), shared by the sources of a
 * thread. */
typedef struct {
  ZSTD_DCtx *dctx;
  guint8 *zbuf;
  gsize zcap;
  SrcBlock slots[SRC_CACHE_SLOTS];
  guint64 tick;
  /* The read-ahead window (src_pread): bytes [@ra_off, @ra_off + @ra_len)
   * of the file of source @ra_src; @ra_last: where that source's last read
   * ended; @ra_grow: the next refill's size. */
  guint8 *ra;
  gsize ra_cap, ra_len, ra_grow;
  guint64 ra_src, ra_off, ra_last;
} SrcScratch;

static void
src_scratch_free(gpointer p)
{
  SrcScratch *sc = p;
  ZSTD_freeDCtx(sc->dctx);
  g_free(sc->zbuf);
  for (guint i = 0; i < SRC_CACHE_SLOTS; i++)
    g_free(sc->slots[i].buf);
  g_free(sc->ra);
  g_free(sc);
}

static GPrivate src_scratch = G_PRIVATE_INIT(src_scratch_free);

/* This thread's scratch, with room for @zlen compressed bytes (NULL: out
 * of memory for a zstd context). */
static SrcScratch *
scratch_get(gsize zlen)
{
  SrcScratch *sc = g_private_get(&src_scratch);
  if (sc == NULL) {
    sc = g_new0(SrcScratch, 1);
    g_private_set(&src_scratch, sc);
  }
  if (sc->dctx == NULL && (sc->dctx = ZSTD_createDCtx()) == NULL)
    return NULL;
  if (sc->zcap < zlen) {
    sc->zcap = zlen;
    sc->zbuf = g_realloc(sc->zbuf, zlen);
  }
  return sc;
}

/* A source's reads (its records' heads, block tables and blocks) that go
 * forward through its file, each starting less than RA_GAP after the end
 * of the one before, are served from a window read at once: RA_MIN bytes
 * at the first refill, twice as many at each next one, up to RA_MAX. A
 * read elsewhere reads just its bytes, so that a lookup of a few pages
 * reads little more than it uses. */
#define RA_MIN (64u * 1024)
#define RA_MAX (256u * 1024)
#define RA_GAP (256u * 1024)

static gboolean
src_pread(SqlenvfsArchiveRecordSource *src, SrcScratch *sc, void *buf, gsize len, guint64 off,
          gsize *got, GError **error)
{
  gboolean forward;
  gsize want, n = 0;

  if (sc->ra_src == src->id && off >= sc->ra_off && off + len <= sc->ra_off + sc->ra_len) {
    memcpy(buf, sc->ra + (off - sc->ra_off), len);
    *got = len;
    sc->ra_last = off + len;
    return TRUE;
  }
  forward = sc->ra_src == src->id && off >= sc->ra_last && off - sc->ra_last < RA_GAP;
  if (sc->ra_src != src->id)
    sc->ra_grow = 0;
  sc->ra_src = src->id;
  sc->ra_len = 0;
  sc->ra_last = off + len;
  if (!forward || len >= RA_MAX) {
    sc->ra_grow = 0;
    return archive_pread_full(src->fd, buf, len, off, got, src->path, error);
  }
  want = MAX(len, MAX(sc->ra_grow, RA_MIN));
  if (sc->ra_cap < want) {
    g_free(sc->ra);
    sc->ra = g_malloc(want);
    sc->ra_cap = want;
  }
  if (!archive_pread_full(src->fd, sc->ra, want, off, &n, src->path, error))
    return FALSE;
  sc->ra_off = off;
  sc->ra_len = n;
  sc->ra_grow = MIN(2 * want, (gsize)RA_MAX);
  *got = MIN(len, n);
  memcpy(buf, sc->ra, *got);
  return TRUE;
}

gboolean
archive_record_source_pread(SqlenvfsArchiveRecordSource *src, void *buf, gsize len, guint64 off,
                            gsize *got, GError **error)
{
  SrcScratch *sc = scratch_get(0);
  if (sc == NULL)
    return archive_pread_full(src->fd, buf, len, off, got, src->path, error);
  return src_pread(src, sc, buf, len, off, got, error);
}

/* Never reused, unlike a source's address: a block cached for a freed
 * source is never taken for another's. */
static guint64 src_next_id = 1;
G_LOCK_DEFINE_STATIC(src_next_id);

SqlenvfsArchiveRecordSource *
sqlenvfs_archive_record_source_new(SqlenvfsArchive *a, guint segment, GError **error)
{
  SqlenvfsArchiveRecordSource *src;
  const SqlenvfsArchiveSegment *seg;
  const ArchiveSegSum *ss;
  const char *path;
  int fd;

  g_return_val_if_fail(segment < a->segments->len, NULL);
  seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, segment);
  path = seg->path;
  ss = segment < a->segsum->len ? segsum(a, segment) : NULL;
  if (ss != NULL && ss->is_summarized && !ss->is_seg_checked && !ss->is_seg_bad) {
    /* Opened and checked at its first read. */
    fd = -1;
  } else {
    if (!archive_seg_check(a, segment, error))
      return NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      sqlenvfs_error_errno(error, errno, "open archive segment", path);
      return NULL;
    }
  }
  src = g_new0(SqlenvfsArchiveRecordSource, 1);
  src->path = g_strdup(path);
  src->fd = fd;
  g_mutex_init(&src->open_lock);
  if (fd < 0) {
    src->is_lazy = TRUE;
    src->expect_seg = seg_expect(seg, ss);
    src->dir = g_strdup(a->dir);
    src->bad = a->deferred_bad_maps;
  }
  G_LOCK(src_next_id);
  src->id = src_next_id++;
  G_UNLOCK(src_next_id);
  src->records = g_array_new(FALSE, FALSE, sizeof(SrcRecord));
  src->refs = g_array_new(FALSE, FALSE, sizeof(guint64));
  src->starts = g_array_new(FALSE, FALSE, sizeof(guint64));
  src->crcs = g_array_new(FALSE, FALSE, sizeof(guint32));
  src->table_rec = -1;
  return src;
}

void
sqlenvfs_archive_record_source_free(gpointer p)
{
  SqlenvfsArchiveRecordSource *src = p;
  if (src == NULL)
    return;
  if (src->fd >= 0)
    close(src->fd);
  g_array_free(src->records, TRUE);
  g_array_free(src->refs, TRUE);
  g_array_free(src->starts, TRUE);
  g_array_free(src->crcs, TRUE);
  if (src->expect)
    g_array_free(src->expect, TRUE);
  g_clear_error(&src->open_error);
  g_mutex_clear(&src->open_lock);
  g_free(src->dir);
  g_free(src->path);
  g_free(src);
}

int
archive_record_source_fd(SqlenvfsArchiveRecordSource *src, GError **error)
{
  int fd;

  g_mutex_lock(&src->open_lock);
  if (src->fd < 0 && src->is_lazy && src->open_error == NULL) {
    const char *why = NULL;
    GError *local = NULL;
    SegFile sf;
    if (archive_seg_open_expect(-1, src->dir, &src->expect_seg, &sf, &why, &local) &&
        why == NULL) {
      src->fd = sf.fd;
      sf.fd = -1;
      archive_seg_file_close(&sf);
    } else if (local != NULL) {
      src->open_error = local;
    } else {
      note_mismatch(-1, src->dir, src->expect_seg.number, src->path, why, src->bad);
      g_set_error(&src->open_error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "archive segment %s does not match its summary: %s; nothing is read from it "
                  "through its summary (run `sqlenvfs verify`)",
                  src->path, why);
    }
  }
  fd = src->fd;
  if (fd < 0 && src->open_error != NULL)
    g_propagate_error(error, g_error_copy(src->open_error));
  g_mutex_unlock(&src->open_lock);
  return fd;
}

void
archive_record_source_expect(SqlenvfsArchiveRecordSource *src, goffset ref, guint64 list_off,
                             guint32 pgno)
{
  guint i = (guint)(ref / src->page_size);
  if (src->expect == NULL)
    src->expect = g_array_new(FALSE, TRUE, sizeof(SrcExpect));
  if (src->expect->len <= i)
    g_array_set_size(src->expect, i + 1);
  g_array_index(src->expect, SrcExpect, i) = (SrcExpect){ list_off, pgno, FALSE };
}

/* A record is kept once for the pages registered from it in a row (a
 * rebuild registers a record's pages together); registered again after
 * another, it is kept again, which costs memory, never a wrong page. */
goffset
sqlenvfs_archive_record_source_add(SqlenvfsArchiveRecordSource *src,
                                   const SqlenvfsArchiveEntry *e, guint32 k)
{
  guint ri = src->records->len;
  guint64 ref;

  g_return_val_if_fail(e->flags & SQLENVFS_ARCHIVE_COMPRESSED, 0);
  g_return_val_if_fail(k < archive_stream_pages(e), 0);
  g_return_val_if_fail(src->page_size == 0 || src->page_size == e->page_size, 0);
  src->page_size = e->page_size;
  if (ri == 0 || g_array_index(src->records, SrcRecord, ri - 1).offset != e->offset) {
    SrcRecord r = { e->offset, e->length, archive_stream_pages(e), e->n_pages };
    g_array_append_val(src->records, r);
    ri = src->records->len;
  }
  ref = ((guint64)(ri - 1) << 32) | k;
  g_array_append_val(src->refs, ref);
  return (goffset)(src->refs->len - 1) * src->page_size;
}

/* @a with room for its elements only (of @size bytes each). */
static GArray *
array_trimmed(GArray *a, guint size)
{
  GArray *t = g_array_sized_new(FALSE, FALSE, size, a->len);
  g_array_append_vals(t, a->data, a->len);
  g_array_free(a, TRUE);
  return t;
}

void
archive_record_source_trim(SqlenvfsArchiveRecordSource *src)
{
  src->records = array_trimmed(src->records, sizeof(SrcRecord));
  src->refs = array_trimmed(src->refs, sizeof(guint64));
}

static gboolean
source_corrupt(SqlenvfsArchiveRecordSource *src, const SrcRecord *r, const char *why,
               GError **error)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
              "archive segment %s is corrupt: the record at offset %" G_GUINT64_FORMAT
              " %s (run `sqlenvfs verify`)", src->path, r->offset, why);
  return FALSE;
}

/* Block @j of record @ri, decompressed, in this thread's block cache
 * (read, checked and decompressed when it is not there); NULL and *error
 * when it cannot be read or fails a check. */
static const guint8 *
source_load(SqlenvfsArchiveRecordSource *src, guint ri, guint32 j, GError **error)
{
  const SrcRecord *r = &g_array_index(src->records, SrcRecord, ri);
  guint32 ps = src->page_size;
  guint32 ppb = archive_pages_per_block(ps), nb = archive_n_blocks(r->n_pages, ps);
  gsize raw = (gsize)MIN(ppb, r->n_pages - j * ppb) * ps, stored, got;
  guint64 first = REC_HEADER_SIZE + 4 * (guint64)r->own_pages;
  guint64 table_off = r->length - REC_TRAILER_SIZE - (guint64)nb * BLOCK_ENTRY_SIZE;
  g_autofree guint8 *table = NULL;
  const char *why;
  guint32 want_crc;
  SrcScratch *sc = scratch_get(0);
  SrcBlock *slot = NULL;

  if (sc == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "read archive segment %s: cannot create a zstd context (out of memory)",
                src->path);
    return NULL;
  }
  for (guint i = 0; i < SRC_CACHE_SLOTS; i++) {
    SrcBlock *b = &sc->slots[i];
    if (b->src_id == src->id && b->ri == ri && b->block == j) {
      b->used = ++sc->tick;
      return b->buf;
    }
    if (slot == NULL || b->used < slot->used)
      slot = b;
  }
  if (src->fd < 0 && archive_record_source_fd(src, error) < 0)
    return NULL;
  if (src->table_rec != (gint64)ri) {
    guint64 at = first;
    table = g_malloc((gsize)nb * BLOCK_ENTRY_SIZE);
    if (!src_pread(src, sc, table, (gsize)nb * BLOCK_ENTRY_SIZE, r->offset + table_off, &got,
                   error))
      return NULL;
    if (got < (gsize)nb * BLOCK_ENTRY_SIZE) {
      source_corrupt(src, r, "is cut short (the file is truncated)", error);
      return NULL;
    }
    src->table_rec = -1;
    g_array_set_size(src->starts, 0);
    g_array_set_size(src->crcs, 0);
    for (guint32 b = 0; b <= nb; b++) {
      g_array_append_val(src->starts, at);
      if (b < nb) {
        guint32 c = get32(table + (gsize)b * BLOCK_ENTRY_SIZE + 4);
        at += get32(table + (gsize)b * BLOCK_ENTRY_SIZE);
        g_array_append_val(src->crcs, c);
      }
    }
    if (at != table_off) {
      source_corrupt(src, r, "has a block table that does not match its data", error);
      return NULL;
    }
    src->table_rec = ri;
  }
  stored = (gsize)(g_array_index(src->starts, guint64, j + 1) -
                   g_array_index(src->starts, guint64, j));
  want_crc = g_array_index(src->crcs, guint32, j);
  if (stored == 0 || stored > raw) {
    source_corrupt(src, r, "has a block table that does not match its data", error);
    return NULL;
  }
  sc = scratch_get(stored);
  if (slot->cap < (gsize)ppb * ps) {
    slot->cap = (gsize)ppb * ps;
    slot->buf = g_realloc(slot->buf, slot->cap);
  }
  slot->src_id = 0; /* about to change */
  if (!src_pread(src, sc, sc->zbuf, stored, r->offset + g_array_index(src->starts, guint64, j),
                 &got, error))
    return NULL;
  if (got < stored) {
    source_corrupt(src, r, "is cut short (the file is truncated)", error);
    return NULL;
  }
  why = archive_decode_block(sc->zbuf, stored, raw, want_crc, slot->buf, sc->dctx);
  if (why != NULL) {
    source_corrupt(src, r, why, error);
    return NULL;
  }
  slot->src_id = src->id;
  slot->ri = ri;
  slot->block = j;
  slot->used = ++sc->tick;
  return slot->buf;
}

gssize
sqlenvfs_archive_record_source_read(gpointer p, void *buf, gsize len, goffset off,
                                    GError **error)
{
  SqlenvfsArchiveRecordSource *src = p;
  guint64 i, within, ref;
  guint32 ri, k, ppb;
  const guint8 *block;
  gsize n;

  if (src->page_size == 0 || off < 0)
    return 0;
  i = (guint64)off / src->page_size;
  within = (guint64)off % src->page_size;
  if (i >= src->refs->len)
    return 0;
  ref = g_array_index(src->refs, guint64, i);
  ri = (guint32)(ref >> 32);
  k = (guint32)ref;
  if (src->expect != NULL && i < src->expect->len &&
      g_array_index(src->expect, SrcExpect, i).list_off != 0 &&
      !g_array_index(src->expect, SrcExpect, i).is_checked) {
    SrcExpect *x = &g_array_index(src->expect, SrcExpect, i);
    guint8 b[4];
    gsize got;
    if (src->fd < 0 && archive_record_source_fd(src, error) < 0)
      return -1;
    if (!archive_record_source_pread(src, b, sizeof b, x->list_off, &got, error))
      return -1;
    if (got != sizeof b || get32(b) != x->pgno) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "archive segment %s: its summary does not match its records: it places page "
                  "%u where the page list at byte %" G_GUINT64_FORMAT " names another (run "
                  "`sqlenvfs verify`)", src->path, x->pgno, x->list_off);
      return -1;
    }
    x->is_checked = TRUE;
  }
  ppb = archive_pages_per_block(src->page_size);
  block = source_load(src, ri, k / ppb, error);
  if (block == NULL)
    return -1;
  n = (gsize)MIN((guint64)len, src->page_size - within);
  memcpy(buf, block + (gsize)(k % ppb) * src->page_size + within, n);
  return (gssize)n;
}

char *
sqlenvfs_archive_read_gap_text(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e, GError **error)
{
  const char *path;
  int fd;
  g_autofree char *text = NULL;
  gsize got;

  g_return_val_if_fail(e->type == SQLENVFS_ARCHIVE_GAP, NULL);
  if (e->seq == 0 || e->text_len == 0)
    return g_strdup("");
  path = g_array_index(a->segments, SqlenvfsArchiveSegment, e->segment).path;
  fd = segment_fd(a, e->segment, error);
  if (fd < 0)
    return NULL;
  text = g_malloc0(e->text_len + 1);
  if (!archive_pread_full(fd, text, e->text_len, e->offset + REC_HEADER_SIZE, &got, path, error))
    return NULL;
  if (got < e->text_len || !g_utf8_validate(text, -1, NULL)) {
    archive_corrupt(error, path, e, "has unreadable gap text");
    return NULL;
  }
  return g_steal_pointer(&text);
}

/* After @fn (which may have read another segment), the cursor's view
 * again. */
static void
cursor_again(SegCursor *c)
{
  guint n;
  if (!c->sparse)
    c->v = archive_seg_view(c->a, c->si, &n);
}

void
sqlenvfs_archive_walk(SqlenvfsArchive *a, guint64 after_seq, guint64 upto_seq,
                      SqlenvfsArchiveEntryFunc fn, gpointer user)
{
  guint64 done = after_seq; /* records given to @fn (a walk started over skips them) */
  for (guint si = 0; si < a->segments->len; si++) {
    ArchiveSegSum *ss = segsum(a, si);
    SegCursor c;
    guint64 k0, k1;
    if (ss->is_summarized && ss->s.last_seq <= after_seq)
      continue;
    if (ss->is_summarized && ss->s.first_seq > upto_seq)
      return;
    do {
      seg_cursor(a, si, &c);
      cursor_range(&c, done, upto_seq, &k0, &k1);
      for (guint64 i = k0; i < c.n; i++) {
        const SqlenvfsArchiveEntry *v = cursor_at(&c, i, 1);
        SqlenvfsArchiveEntry e;
        if (v == NULL)
          break;
        e = *v;
        if (e.seq == 0 || e.seq <= done)
          continue;
        if (e.seq > upto_seq)
          return;
        if (!fn(user, &e))
          return;
        done = e.seq;
        cursor_again(&c);
      }
    } while (c.failed);
  }
}

static gboolean
range_gap(GError **error, const SqlenvfsArchive *a, guint64 after_seq, guint64 upto_seq,
          const char *what)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
              "the archive %s %s between records %" G_GUINT64_FORMAT " and %" G_GUINT64_FORMAT,
              a->dir, what, after_seq, upto_seq);
  return FALSE;
}

/* The pages written in (@after_seq, @upto_seq] by the records of the
 * summarized segment @si, from its page map, into @set (FALSE: the summary
 * cannot be used now; read the records). */
static gboolean
pages_from_summary(SqlenvfsArchive *a, guint si, guint64 after_seq, guint64 upto_seq,
                   GHashTable *set)
{
  const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
  ArchiveSegSum *ss = segsum(a, si);
  g_autofree guint8 *p = NULL;
  g_autoptr(GError) local = NULL;
  const char *why = NULL;
  ArchiveSummary s;

  /* The segment is what the summary says (else its records are read, and
   * fail). */
  if (!archive_seg_check(a, si, &local)) {
    g_debug("archive %s: the page map of %s is not used: %s", a->dir, seg->path, local->message);
    return FALSE;
  }
  if (archive_summary_load(a->dir, seg->number, seg->size, ss->s.seal_crc, &s, &p, &why,
                           &local) != ARCHIVE_SUM_GOOD) {
    g_debug("archive %s: the page map of %s is not used: %s", a->dir, seg->path,
            why ? why : local ? local->message : "missing");
    return FALSE;
  }
  for (guint32 i = 0; i < s.n_pages; i++) {
    const guint8 *pg = p + s.pages_off + (gsize)i * ARCHIVE_SUM_PAGE_SIZE;
    guint32 first = get32(pg + 4);
    guint32 end = i + 1 < s.n_pages ? get32(pg + ARCHIVE_SUM_PAGE_SIZE + 4) : s.n_versions;
    guint32 lo = first, hi = end; /* the first version with seq > @upto_seq */
    while (lo < hi) {
      guint32 mid = lo + (hi - lo) / 2;
      if (get64(p + s.versions_off + (gsize)mid * ARCHIVE_SUM_VERSION_SIZE) <= upto_seq)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo > first &&
        get64(p + s.versions_off + (gsize)(lo - 1) * ARCHIVE_SUM_VERSION_SIZE) > after_seq)
      g_hash_table_add(set, GUINT_TO_POINTER(get32(pg)));
  }
  return TRUE;
}

gboolean
sqlenvfs_archive_pages_written(SqlenvfsArchive *a, guint64 after_seq, guint64 upto_seq,
                               GHashTable *set, guint64 *n_commits, GError **error)
{
  guint64 expect = after_seq + 1;

  for (guint si = 0; si < a->segments->len && expect <= upto_seq; si++) {
    ArchiveSegSum *ss = segsum(a, si);
    if (ss->is_summarized) {
      if (ss->s.last_seq < expect)
        continue;
      if (ss->s.first_seq > expect)
        return range_gap(error, a, after_seq, upto_seq, "is missing records");
      for (guint i = 0; i < ss->s.n_marks; i++)
        if (ss->marks[i].type == SQLENVFS_ARCHIVE_GAP && ss->marks[i].seq >= expect &&
            ss->marks[i].seq <= upto_seq)
          return range_gap(error, a, after_seq, upto_seq, "has a gap");
      if (pages_from_summary(a, si, after_seq, upto_seq, set)) {
        expect = MIN(ss->s.last_seq, upto_seq) + 1;
        continue;
      }
    }
    {
      guint64 expect0 = expect, k0, k1;
      SegCursor c;
      do {
        expect = expect0; /* started over: the same pages again */
        seg_cursor(a, si, &c);
        cursor_range(&c, expect - 1, upto_seq, &k0, &k1);
        for (guint64 i = k0; i < k1 && expect <= upto_seq; i++) {
          const SqlenvfsArchiveEntry *v = cursor_at(&c, i, 1);
          g_autofree guint32 *pgnos = NULL;
          SqlenvfsArchiveEntry e;
          guint64 off;
          if (v == NULL)
            break;
          e = *v;
          if (e.seq == 0 || e.seq < expect)
            continue;
          if (e.seq != expect)
            return range_gap(error, a, after_seq, upto_seq, "is missing records");
          if (e.type == SQLENVFS_ARCHIVE_GAP)
            return range_gap(error, a, after_seq, upto_seq, "has a gap");
          expect++;
          if (e.type != SQLENVFS_ARCHIVE_COMMIT)
            continue;
          pgnos = sqlenvfs_archive_read_commit(a, &e, &off, error);
          if (pgnos == NULL)
            return FALSE;
          cursor_again(&c);
          for (guint32 k = 0; k < e.n_pages; k++)
            g_hash_table_add(set, GUINT_TO_POINTER(pgnos[k]));
        }
      } while (c.failed);
    }
  }
  if (expect <= upto_seq)
    return range_gap(error, a, after_seq, upto_seq, "is missing records");
  if (n_commits != NULL)
    sqlenvfs_archive_count_commits(a, after_seq, upto_seq, n_commits, NULL, NULL);
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Checking every record                                                */

/* What check_records found in one segment file (memo by identity). */
typedef struct {
  guint64 dev, ino, size;
  gint64 mtime_ns, ctime_ns;
  guint64 checked_upto; /* every COMMIT record ending at or before this was read */
  GArray *bad;          /* guint64 offsets of the records that failed */
  gboolean unsaved;     /* noted by the writer, not in a memo file yet */
} SegMemo;

static GMutex memo_lock;
static GHashTable *memos; /* path -> SegMemo * */

static void
seg_memo_free(gpointer p)
{
  SegMemo *m = p;
  g_array_unref(m->bad);
  g_free(m);
}

static gboolean
offset_is_bad(const GArray *bad, guint64 off)
{
  for (guint i = 0; i < bad->len; i++)
    if (g_array_index(bad, guint64, i) == off)
      return TRUE;
  return FALSE;
}

static SegMemo *
seg_memo_new(const struct stat *st, guint64 checked_upto, GArray *bad /* ref taken */)
{
  SegMemo *m = g_new0(SegMemo, 1);
  m->dev = (guint64)st->st_dev;
  m->ino = (guint64)st->st_ino;
  m->size = (guint64)st->st_size;
  m->mtime_ns = (gint64)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
  m->ctime_ns = (gint64)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
  m->checked_upto = checked_upto;
  m->bad = bad;
  return m;
}

void
sqlenvfs_archive_forget_checks(void)
{
  g_mutex_lock(&memo_lock);
  g_clear_pointer(&memos, g_hash_table_destroy);
  g_mutex_unlock(&memo_lock);
  g_mutex_lock(&mismatch_lock);
  g_clear_pointer(&mismatches, g_hash_table_destroy);
  g_atomic_int_set(&n_mismatches, 0);
  g_mutex_unlock(&mismatch_lock);
}

/* The process memo, made or, once it holds more than 65536 segments,
 * started afresh (forgetting only costs reads): its memory stays bounded
 * in a process that lives long, such as a mount whose archiver notes each
 * segment it writes. Called with memo_lock held. */
static void
memo_table_locked(void)
{
  if (memos != NULL && g_hash_table_size(memos) > 65536)
    g_clear_pointer(&memos, g_hash_table_destroy);
  if (memos == NULL)
    memos = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, seg_memo_free);
}

void
archive_note_checked(const char *path, const struct stat *st, guint64 upto)
{
  g_mutex_lock(&memo_lock);
  memo_table_locked();
  g_hash_table_replace(memos, g_strdup(path),
                       seg_memo_new(st, upto, g_array_new(FALSE, FALSE, sizeof(guint64))));
  g_mutex_unlock(&memo_lock);
}

void
archive_note_written(const char *path, const struct stat *st, guint64 from)
{
  SegMemo *m, *n = NULL;
  g_mutex_lock(&memo_lock);
  memo_table_locked();
  m = g_hash_table_lookup(memos, path);
  if (from == 0)
    n = seg_memo_new(st, (guint64)st->st_size, g_array_new(FALSE, FALSE, sizeof(guint64)));
  else if (m != NULL && m->dev == (guint64)st->st_dev && m->ino == (guint64)st->st_ino &&
           m->size == from)
    n = seg_memo_new(st, (guint64)st->st_size, g_array_ref(m->bad));
  if (n != NULL) {
    n->unsaved = TRUE;
    g_hash_table_replace(memos, g_strdup(path), n);
  }
  g_mutex_unlock(&memo_lock);
}

/* The memo file (see sqlenvfs_archive_check_records):
 *   MEMO_FIRST_LINE, then
 *   "<segment file name> <dev> <ino> <size> <mtime ns> <ctime ns> <checked
 *    up to> <bad offsets, comma-separated, or ->\n" per segment, then
 *   "crc32=0x<8 hex>\n" over every byte before it.
 * Adds what it says of the segments of @dir to the process memo, for paths
 * the memo does not hold yet. A file that fails its checksum is ignored. */
#define MEMO_FIRST_LINE "sqlenvfs checked 2\n"
/* At most this many damaged records listed for a segment; a segment with
 * more is not remembered (it is read again). */
#define MEMO_MAX_BAD 256

static void
load_memo_file(const char *memo_path, const char *dir)
{
  g_autofree char *data = NULL;
  g_auto(GStrv) lines = NULL;
  const char *tail;
  gsize len = 0;
  guint32 sum;

  if (memo_path == NULL || !g_file_get_contents(memo_path, &data, &len, NULL))
    return;
  tail = g_strrstr_len(data, (gssize)len, "crc32=0x");
  if (tail == NULL || (tail != data && tail[-1] != '\n') ||
      sscanf(tail, "crc32=0x%8x", &sum) != 1 || sum != crc(0, data, (gsize)(tail - data))) {
    g_debug("ignoring %s: it fails its checksum", memo_path);
    return;
  }
  /* Files written before this first line could remember a segment that
   * does not match its summary as checked: read the records again. */
  if (!g_str_has_prefix(data, MEMO_FIRST_LINE)) {
    g_debug("ignoring %s: written by an older sqlenvfs", memo_path);
    return;
  }
  data[tail - data] = '\0';
  lines = g_strsplit(data + strlen(MEMO_FIRST_LINE), "\n", -1);
  g_mutex_lock(&memo_lock);
  memo_table_locked();
  for (char **l = lines; *l; l++) {
    char name[64], bad[8192]; /* MEMO_MAX_BAD offsets of up to 20 digits */
    struct stat st = { 0 };
    guint64 dev, ino, size, upto;
    gint64 mt, ct;
    g_autofree char *path = NULL;
    GArray *offs;
    if (sscanf(*l, "%63s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
               " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GUINT64_FORMAT " %8191s",
               name, &dev, &ino, &size, &mt, &ct, &upto, bad) != 8 ||
        strchr(name, '/') != NULL)
      continue;
    path = g_build_filename(dir, name, NULL);
    if (g_hash_table_contains(memos, path))
      continue;
    offs = g_array_new(FALSE, FALSE, sizeof(guint64));
    if (strcmp(bad, "-") != 0) {
      g_auto(GStrv) parts = g_strsplit(bad, ",", -1);
      for (char **q = parts; *q; q++) {
        guint64 o = g_ascii_strtoull(*q, NULL, 10);
        g_array_append_val(offs, o);
      }
    }
    st.st_dev = (dev_t)dev;
    st.st_ino = (ino_t)ino;
    st.st_size = (off_t)size;
    st.st_mtim.tv_sec = mt / 1000000000;
    st.st_mtim.tv_nsec = mt % 1000000000;
    st.st_ctim.tv_sec = ct / 1000000000;
    st.st_ctim.tv_nsec = ct % 1000000000;
    g_hash_table_replace(memos, g_steal_pointer(&path), seg_memo_new(&st, upto, offs));
  }
  g_mutex_unlock(&memo_lock);
}

/* Write what the process memo says of the segments of @a to @memo_path
 * (atomically, not durably, mode 0600); a failure only costs a later
 * reader time. */
static void
save_memo_file(SqlenvfsArchive *a, const char *memo_path)
{
  GString *s = g_string_new(MEMO_FIRST_LINE);
  g_autoptr(GError) local = NULL;

  g_mutex_lock(&memo_lock);
  for (guint si = 0; memos != NULL && si < a->segments->len; si++) {
    const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
    const SegMemo *m = g_hash_table_lookup(memos, seg->path);
    g_autofree char *name = g_path_get_basename(seg->path);
    /* Not for the next process: a segment that does not match its summary
     * (that process must find so itself before it trusts the summary), and
     * one with more damaged records than a line lists. */
    if (m == NULL || no_summary_for(a, seg->number) || m->bad->len > MEMO_MAX_BAD)
      continue;
    g_string_append_printf(s, "%s %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                           " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GUINT64_FORMAT " ",
                           name, m->dev, m->ino, m->size, m->mtime_ns, m->ctime_ns,
                           m->checked_upto);
    for (guint i = 0; i < m->bad->len; i++)
      g_string_append_printf(s, "%s%" G_GUINT64_FORMAT, i ? "," : "",
                             g_array_index(m->bad, guint64, i));
    g_string_append(s, m->bad->len ? "\n" : "-\n");
  }
  g_mutex_unlock(&memo_lock);
  g_string_append_printf(s, "crc32=0x%08x\n", crc(0, s->str, s->len));
  /* Not durably (sqlenvfs_write_file_replace): a memo a crash left old,
   * cut short or missing names only segments by their identity as checked,
   * or fails its checksum; either costs the next reader a read. */
  if (!sqlenvfs_write_file_replace(memo_path, s->str, s->len, 0600, &local))
    g_debug("remember archive checks: %s", local->message);
  g_string_free(s, TRUE);
}

/* Turn sealed segment @si, read so far from its summary, into one whose
 * entries are in memory (after the DAMAGED gap before it, if any), so that
 * its damaged records can be replaced in place. Only segments where
 * check_records found damage are turned. */
static void
unsummarize(SqlenvfsArchive *a, guint si)
{
  ArchiveSegSum *ss = segsum(a, si);
  const SqlenvfsArchiveEntry *v;
  guint n;

  if (!ss->is_summarized)
    return;
  v = archive_seg_view(a, si, &n);
  g_array_insert_vals(a->entries, ss->end, v, n);
  for (guint sj = si + 1; sj < a->segsum->len; sj++) {
    segsum(a, sj)->start += n;
    segsum(a, sj)->end += n;
  }
  ss->end += n;
  ss->is_summarized = FALSE;
  g_clear_pointer(&ss->marks, g_free);
  g_clear_pointer(&ss->gens, g_free);
  a->n_summarized--;
  a->cache_si = G_MAXUINT;
  g_array_set_size(a->cache, 0);
}

/* The time of the entry before a->entries[@i] of segment @si in archive
 * order (0: none). */
static gint64
time_before(SqlenvfsArchive *a, guint si, guint i)
{
  if (i > segsum(a, si)->start)
    return g_array_index(a->entries, SqlenvfsArchiveEntry, i - 1).time;
  for (guint sj = si; sj > 0; sj--) {
    ArchiveSegSum *ss = segsum(a, sj - 1);
    if (ss->is_summarized)
      return ss->s.last_time;
    if (ss->end > ss->start)
      return g_array_index(a->entries, SqlenvfsArchiveEntry, ss->end - 1).time;
  }
  return 0;
}

int
sqlenvfs_archive_check_records(SqlenvfsArchive *a, const char *memo_path, GError **error)
{
  guint n_segs;

  g_clear_pointer(&a->marks, g_array_unref);
  a->is_checked = TRUE;
  n_segs = a->segments->len;
  g_autofree guint64 *start = g_new0(guint64, MAX(n_segs, 1));
  g_autofree guint64 *upto = g_new0(guint64, MAX(n_segs, 1));
  g_autofree gboolean *same = g_new0(gboolean, MAX(n_segs, 1));
  g_autofree struct stat *st = g_new0(struct stat, MAX(n_segs, 1));
  g_autoptr(GPtrArray) bad = g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);
  int n_bad = 0;
  guint n_read = 0;
  gboolean unsaved = FALSE; /* the writer noted records the memo file lacks */

  load_memo_file(memo_path, a->dir);
  /* What is already known of each segment. */
  g_mutex_lock(&memo_lock);
  for (guint si = 0; si < n_segs; si++) {
    const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
    const SegMemo *m = memos ? g_hash_table_lookup(memos, seg->path) : NULL;
    GArray *b = g_array_new(FALSE, FALSE, sizeof(guint64));
    g_ptr_array_add(bad, b);
    if (archive_is_fetched(seg->path)) {
      /* Filled on demand: each record is checked as it is fetched. */
      st[si].st_ino = 0;
      same[si] = TRUE;
      continue;
    }
    if ((a->dfd >= 0 ? fstatat(a->dfd, seg_base(seg), &st[si], 0)
                     : stat(seg->path, &st[si])) != 0) {
      st[si].st_ino = 0; /* gone: nothing is remembered for it */
      continue;
    }
    /* A summarized segment not opened yet whose size is not its summary's:
     * checked now (below), not where it is first read. */
    if (segsum(a, si)->is_summarized && !segsum(a, si)->is_seg_checked &&
        (guint64)st[si].st_size != segsum(a, si)->s.seg_size)
      continue;
    if (m == NULL || m->dev != (guint64)st[si].st_dev || m->ino != (guint64)st[si].st_ino)
      continue;
    unsaved |= m->unsaved;
    if (m->size == (guint64)st[si].st_size &&
        m->mtime_ns == (gint64)st[si].st_mtim.tv_sec * 1000000000 + st[si].st_mtim.tv_nsec &&
        m->ctime_ns == (gint64)st[si].st_ctim.tv_sec * 1000000000 + st[si].st_ctim.tv_nsec) {
      start[si] = m->checked_upto; /* unchanged: nothing to read */
      same[si] = TRUE;
    } else if ((guint64)st[si].st_size > m->size) {
      start[si] = m->checked_upto; /* appended to: only the new records */
    } else {
      continue; /* changed in place: read it all again */
    }
    g_array_append_vals(b, m->bad->data, m->bad->len);
  }
  g_mutex_unlock(&memo_lock);

  /* A summarized segment about to be read (or whose size is not its
   * summary's) is checked against its summary first; one that does not
   * match is read from its index and records instead, as though it had
   * no summary: the archive is loaded again that way and checked again
   * (the next round finds no such segment: this ends). */
  {
    g_autoptr(GArray) unmatched = g_array_new(FALSE, FALSE, sizeof(guint64));
    for (guint si = 0; si < n_segs; si++) {
      g_autoptr(GError) local = NULL;
      if (same[si] || !segsum(a, si)->is_summarized)
        continue;
      if (archive_seg_check(a, si, &local))
        continue;
      if (local->domain != SQLENVFS_ERROR || local->code != SQLENVFS_ERROR_INTEGRITY) {
        g_propagate_error(error, g_steal_pointer(&local));
        return -1;
      }
      g_array_append_val(unmatched, g_array_index(a->segments, SqlenvfsArchiveSegment, si).number);
    }
    if (unmatched->len > 0) {
      g_autoptr(GArray) nums = g_array_sized_new(FALSE, FALSE, sizeof(guint64), n_segs);
      for (guint si = 0; si < n_segs; si++)
        g_array_append_val(nums, g_array_index(a->segments, SqlenvfsArchiveSegment, si).number);
      if (a->no_sum_of == NULL)
        a->no_sum_of = g_array_new(FALSE, FALSE, sizeof(guint64));
      g_array_append_vals(a->no_sum_of, unmatched->data, unmatched->len);
      reset(a);
      if (!load_from(a, nums, 0, NULL, error))
        return -1;
      return sqlenvfs_archive_check_records(a, memo_path, error);
    }
  }

  /* Read what is not known yet, segment by segment (a summarized one's
   * entries come from its index, one segment at a time). */
  for (guint si = 0; si < n_segs; si++) {
    const SqlenvfsArchiveEntry *v;
    guint n;
    upto[si] = start[si];
    if (same[si])
      continue;
    v = archive_seg_view(a, si, &n);
    /* Its records in order, read through the walk's window (a few reads of
     * up to 1 MiB, not one or two per commit; each batch's blocks checked
     * by their frames, as verify does, once per batch). */
    if (st[si].st_ino != 0)
      archive_record_walk_begin(a, si, start[si], (guint64)st[si].st_size);
    for (guint i = 0; i < n; i++) {
      SqlenvfsArchiveEntry e = v[i];
      g_autoptr(GError) local = NULL;
      g_autofree guint32 *pgnos = NULL;
      guint64 data;
      if (e.type != SQLENVFS_ARCHIVE_COMMIT || e.seq == 0)
        continue;
      upto[si] = MAX(upto[si], e.offset + e.length);
      if (e.offset < start[si])
        continue;
      n_read++;
      pgnos = sqlenvfs_archive_read_commit(a, &e, &data, &local);
      v = archive_seg_view(a, si, &n); /* the same segment: still cached */
      if (pgnos != NULL)
        continue;
      if (local->domain != SQLENVFS_ERROR || local->code != SQLENVFS_ERROR_INTEGRITY) {
        archive_record_walk_end(a);
        g_propagate_error(error, g_steal_pointer(&local));
        return -1;
      }
      g_info("archive %s: %s", a->dir, local->message);
      if (!offset_is_bad(bad->pdata[si], e.offset))
        g_array_append_val((GArray *)bad->pdata[si], e.offset);
    }
    archive_record_walk_end(a);
  }

  /* Remember, then mark the damaged records (invariant 2: never bridged). */
  g_mutex_lock(&memo_lock);
  memo_table_locked();
  for (guint si = 0; si < n_segs; si++) {
    const SqlenvfsArchiveSegment *seg = &g_array_index(a->segments, SqlenvfsArchiveSegment, si);
    SegMemo *m;
    if (st[si].st_ino == 0)
      continue;
    m = seg_memo_new(&st[si], upto[si], g_array_ref(bad->pdata[si]));
    g_hash_table_replace(memos, g_strdup(seg->path), m);
  }
  g_mutex_unlock(&memo_lock);
  if (memo_path != NULL && (n_read > 0 || unsaved))
    save_memo_file(a, memo_path);

  /* A segment with damage keeps its entries in memory (its summary no
   * longer describes what can be read), each damaged record replaced by a
   * DAMAGED gap: the sparse reading then gives it as a mark with after_seq
   * the record before, and get() no longer finds it. */
  for (guint si = 0; si < n_segs; si++) {
    ArchiveSegSum *ss;
    if (((GArray *)bad->pdata[si])->len == 0)
      continue;
    unsummarize(a, si);
    ss = segsum(a, si);
    for (guint i = ss->start; i < ss->end; i++) {
      SqlenvfsArchiveEntry *e = &g_array_index(a->entries, SqlenvfsArchiveEntry, i);
      SqlenvfsArchiveEntry gap = { 0 };
      if (e->type != SQLENVFS_ARCHIVE_COMMIT || e->seq == 0 ||
          !offset_is_bad(bad->pdata[si], e->offset))
        continue;
      gap.type = SQLENVFS_ARCHIVE_GAP;
      gap.reason = SQLENVFS_GAP_DAMAGED;
      gap.time = e->time;
      gap.aux_time = time_before(a, si, i);
      gap.commit_frame = G_MAXUINT32; /* never a state */
      gap.segment = e->segment;
      gap.offset = e->offset;
      gap.length = e->length;
      *e = gap;
      n_bad++;
    }
  }
  return n_bad;
}

/* ------------------------------------------------------------------ */
/* The end of the archive, for the writer                               */

gboolean
archive_last_records(SqlenvfsArchive *a, SqlenvfsArchiveEntry *last, gboolean *has_last,
                     SqlenvfsArchiveEntry *state, gboolean *has_state)
{
  *has_last = *has_state = FALSE;
  for (guint si = a->segments->len; si > 0 && !*has_state; si--) {
    SegCursor c;
    gboolean had_last = *has_last;
    /* Its records (a reader's synthetic entries, seq 0, passed over). */
    do {
      *has_last = had_last;
      seg_cursor(a, si - 1, &c);
      for (guint64 i = c.n; i > 0; i--) {
        const SqlenvfsArchiveEntry *e = cursor_at(&c, i - 1, -1);
        if (e == NULL)
          break;
        if (e->seq == 0)
          continue;
        if (!*has_last) {
          *last = *e;
          *has_last = TRUE;
        }
        if (e->type == SQLENVFS_ARCHIVE_GAP || e->type == SQLENVFS_ARCHIVE_COMMIT) {
          *state = *e;
          *has_state = TRUE;
          break;
        }
      }
    } while (c.failed);
  }
  return *has_last;
}
