/*
 * archive.h — the continuous WAL archive of one database on disk
 * (backups/prod/wal_archives/<db>/; byte layout and invariants:
 * docs/ARCHIVE.md and the top of src/core/archive_format.c).
 *
 * The archive is a sequence of records, numbered by a sequence number
 * (seq) that increases by one from record to record over the whole archive,
 * stored in segment files (<number>.seg) of at most segment-max-bytes each
 * (a single larger record gets a segment of its own). Each segment has an
 * index file (<number>.idx) holding a copy of every record header and its
 * offset, so that readers find records by time or WAL position without
 * reading page data. The segment is the truth; an index can always be
 * rebuilt from it.
 *
 * Records:
 *   COMMIT  one committed transaction: capture time, WAL position (salts,
 *           first and commit frame, cumulative checksum), database size and
 *           page size, and the last version of every page it wrote.
 *   GAP     a new chain starts: capture was interrupted in a way that may
 *           have lost transactions (or the archive begins here). Times
 *           between the previous chain's end and this record are not
 *           recoverable, and no base carries over.
 *   OUTAGE  capture was interrupted between two times (the archiver was not
 *           running, or could not write), but nothing was lost: the
 *           transactions committed meanwhile were archived late, after it,
 *           each stamped with its time (which each began before) and
 *           carrying its aux time, the outage's start, as its own. An
 *           attempt that fails after writing it leaves it; the next writes
 *           another from the same start when commits were made meanwhile.
 *           In the last chain, the states from its end on wait for the alive
 *           time to reach it. The chain continues; the times inside the
 *           outage are not recoverable.
 *   SEAL    the last record of a full segment: crc32 of every byte before it.
 *
 * Beside the segments, the file "alive" holds the last time up to which the
 * archiver knew every commit to be archived and durable (rewritten in place,
 * at most every 500 ms while capturing, and at once on a sync request or a
 * stop; a stale value only makes the window shorter).
 *
 * Invariants:
 *   (1) A record is valid only if its header checksum, its length and its
 *       trailer checksum (over header and body) are right. Readers never use
 *       an invalid record, and never a record the index does not list unless
 *       they scanned the segment to rebuild the index.
 *   (2) Sequence numbers are consecutive; a missing number means lost
 *       records, and readers treat it like a gap (reason DAMAGED).
 *   (3) Records are only ever appended. The writer, when it opens an
 *       archive, truncates a torn tail (an incomplete or invalid last record
 *       of the last segment, left by a crash) and rewrites that segment's
 *       index; nothing past the last valid record is ever served.
 *   (4) Within a chain, COMMIT records are every committed transaction in
 *       commit order: applying their pages in sequence to a base that holds
 *       the state after one of them gives the state after any later one.
 *   (5) Capture times never decrease along the archive (the writer clamps a
 *       clock that stepped back to the previous time).
 *   (6) Segments disappear only by prune, which first records each in the
 *       prune log (PRUNED); a missing segment it does not list was lost.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/image.h"

G_BEGIN_DECLS

/* The format version new segments are written in; segments of every
 * version from SQLENVFS_ARCHIVE_VERSION_MIN on are read (docs/ARCHIVE.md). */
#define SQLENVFS_ARCHIVE_VERSION 2
#define SQLENVFS_ARCHIVE_VERSION_MIN 1

typedef enum {
  SQLENVFS_ARCHIVE_COMMIT = 1,
  SQLENVFS_ARCHIVE_GAP = 2,
  SQLENVFS_ARCHIVE_OUTAGE = 3,
  SQLENVFS_ARCHIVE_SEAL = 4,
} SqlenvfsArchiveRecordType;

/* Why a chain started (GAP records). */
typedef enum {
  SQLENVFS_GAP_FIRST_START = 1,   /* nothing was archived before                  */
  SQLENVFS_GAP_WAL_RESTARTED = 2, /* the WAL restarted while nobody held it       */
  SQLENVFS_GAP_WAL_MISSING = 3,   /* the WAL was gone (checkpointed and deleted)  */
  SQLENVFS_GAP_WAL_MISMATCH = 4,  /* the last archived frame is not in the WAL    */
  SQLENVFS_GAP_DB_REPLACED = 5,   /* the database file was replaced               */
  SQLENVFS_GAP_DAMAGED = 6,       /* readers only: records missing or unreadable  */
} SqlenvfsGapReason;

/* COMMIT flags */
#define SQLENVFS_ARCHIVE_BIG_ENDIAN_CKSUM 0x1 /* WAL magic 0x377f0683 */
/* The page images are stored compressed, in blocks (version 2 segments only;
 * docs/ARCHIVE.md): read them with read_commit_pages() or a record source,
 * never at a byte offset of the segment. */
#define SQLENVFS_ARCHIVE_COMPRESSED 0x2
/* A commit of a batch (version 2) whose page images are in the batch's
 * first record (reason: how many records before this one; text_len: the
 * index of its first page among that record's pages). */
#define SQLENVFS_ARCHIVE_BATCHED 0x4

/* One record, as its header (and the index) describes it. */
typedef struct {
  SqlenvfsArchiveRecordType type;
  guint32 flags;
  guint64 seq;
  /* COMMIT: capture time (after the commit frame was read).
   * GAP: when the new chain starts (its first scan began).
   * OUTAGE: when capture was complete again (the capture time of the last
   *         transaction archived late, which precede it).
   * SEAL: the time of the record before it (a seal never moves time on). */
  gint64 time;
  /* COMMIT: when the scan that captured it began: every commit that returned
   * before this time is in this record or an earlier one.
   * GAP, OUTAGE: the last time capture was known complete before the
   * interruption (0: never). */
  gint64 aux_time;
  guint32 page_size;
  guint32 db_pages;     /* COMMIT: database size in pages after it               */
  guint32 n_pages;      /* COMMIT: page images in the record                      */
  guint32 salt1, salt2; /* COMMIT: WAL generation; GAP: WAL header then (0: none) */
  guint32 ckpt_seq;
  guint32 first_frame;  /* COMMIT: first frame of the transaction                 */
  guint32 commit_frame; /* COMMIT: its commit frame; GAP: last commit frame in the
                         * WAL when the chain started (0: the WAL held none)      */
  guint32 cksum1, cksum2; /* COMMIT: cumulative WAL checksum after commit_frame   */
  guint32 reason;       /* GAP: SqlenvfsGapReason; SEAL: crc32 of the segment     */
  guint32 text_len;     /* GAP: bytes of reason text in the body                  */
  guint32 digest;       /* SEAL (flag 1): digest of the segment's records before it */
  /* Where it is (set by readers and the writer). */
  guint32 segment;      /* index in the reader's segment list                     */
  guint64 offset;       /* byte offset of the record in its segment               */
  guint64 length;       /* bytes of the whole record                              */
} SqlenvfsArchiveEntry;

/* A GAP record is also a state a base can map to only when the WAL held no
 * committed frame when the chain started (the database file alone was the
 * state). A COMMIT always is. */
gboolean sqlenvfs_archive_entry_is_state(const SqlenvfsArchiveEntry *e);

const char *sqlenvfs_archive_gap_reason_text(SqlenvfsGapReason reason);

/* The checksum of @e's header as written (its bytes 92..95, invariant 1).
 * It covers every field, the capture time to the microsecond among them,
 * so that two archives that went apart (a root and a copy of it, each
 * archiving on its own from then on) give their records of one number
 * different ones. */
guint32 sqlenvfs_archive_entry_header_crc(const SqlenvfsArchiveEntry *e);

/* Decode the index file of segment @number (@len bytes at @data) into
 * @entries (a GArray of SqlenvfsArchiveEntry, emptied first). FALSE, with
 * @entries empty, when the header or any entry is damaged, of an unknown
 * version or of another segment: the segment must then be scanned. */
gboolean sqlenvfs_archive_idx_decode(const void *data, gsize len, guint64 number, GArray *entries);

/* ------------------------------------------------------------------ */
/* Writing                                                              */

typedef struct _SqlenvfsArchiveWriter SqlenvfsArchiveWriter;

/* Open (creating it if needed) the archive in @dir for appending. Recovers
 * from a crash: truncates a torn tail of the last segment, removes a segment
 * file whose header never made it, rewrites the last segment's index, and
 * syncs the last segment (a writer killed before its sync left records whole
 * in the page cache, which the alive times of this writer then vouch for).
 * @segment_max_bytes (>= 64 KiB) is where segments are rolled. Every file
 * it creates or writes (segments, indexes, alive) gets at most the
 * permission bits @mode (production's: an archive holds its pages), the
 * directory sqlenvfs_mode_dir(@mode); files found more open are narrowed.
 * NULL and *error on failure (I/O, or INTEGRITY when the last segment's
 * header is unreadable; nothing is changed then). */
SqlenvfsArchiveWriter *sqlenvfs_archive_writer_open(const char *dir, gint64 segment_max_bytes,
                                                    int mode, GError **error);

/* Production's permission bits are now @mode: when they allow less than
 * the writer's, every file of the archive's directory, the open ones
 * included, and the directory itself are narrowed to them, and so is
 * every file created from then on (a running archiver follows a `chmod`
 * of production). Never widens. FALSE and *error when a file could not be
 * narrowed. */
gboolean sqlenvfs_archive_writer_narrow(SqlenvfsArchiveWriter *w, int mode, GError **error);

/* How many records a segment holds at most, its seal included, unless
 * sqlenvfs_archive_writer_set_max_records() says otherwise. The segment
 * being written has no summary, so what a reader reads of it record by
 * record stays bounded by this whatever the segment's byte size. */
#define SQLENVFS_ARCHIVE_SEGMENT_MAX_RECORDS 16384
void sqlenvfs_archive_writer_set_max_records(SqlenvfsArchiveWriter *w, guint64 max_records);
void sqlenvfs_archive_writer_free(SqlenvfsArchiveWriter *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsArchiveWriter, sqlenvfs_archive_writer_free)

/* The last record written (any type) and the last COMMIT or GAP record, or
 * NULL when the archive is empty. Valid until the next write. */
const SqlenvfsArchiveEntry *sqlenvfs_archive_writer_last(const SqlenvfsArchiveWriter *w);
const SqlenvfsArchiveEntry *sqlenvfs_archive_writer_last_state(const SqlenvfsArchiveWriter *w);

/* The last time capture was known complete according to the archive (the
 * alive file and the records; 0 for an empty archive). */
gint64 sqlenvfs_archive_writer_alive(const SqlenvfsArchiveWriter *w);

/* Append a GAP record: a new chain starting at @time; @prev_alive is the last
 * time capture was known complete before (0: never). @e supplies salt1,
 * salt2, ckpt_seq, page_size and commit_frame (the WAL when the chain
 * started); the other fields are ignored. */
gboolean sqlenvfs_archive_writer_add_gap(SqlenvfsArchiveWriter *w, gint64 time, gint64 prev_alive,
                                         SqlenvfsGapReason reason, const char *text,
                                         const SqlenvfsArchiveEntry *e, GError **error);

/* Append an OUTAGE record: capture was down from @from until @to. */
gboolean sqlenvfs_archive_writer_add_outage(SqlenvfsArchiveWriter *w, gint64 from, gint64 to,
                                            GError **error);

/* Append a COMMIT record in three steps: begin with its header fields in @e
 * (time, aux_time, flags, page_size, db_pages, n_pages, salts, ckpt_seq,
 * frames, checksums) and the @e->n_pages page numbers; then add exactly
 * n_pages * page_size bytes of page images, in the order of @pgnos, in any
 * number of calls; then end. On any failure the partial record is removed
 * (the segment is truncated back) and the writer is ready for a new record.
 * A page number may appear only once. */
gboolean sqlenvfs_archive_writer_begin_commit(SqlenvfsArchiveWriter *w,
                                              const SqlenvfsArchiveEntry *e,
                                              const guint32 *pgnos, GError **error);
gboolean sqlenvfs_archive_writer_add_pages(SqlenvfsArchiveWriter *w, const void *data, gsize len,
                                           GError **error);
gboolean sqlenvfs_archive_writer_end_commit(SqlenvfsArchiveWriter *w, GError **error);
void sqlenvfs_archive_writer_abort_commit(SqlenvfsArchiveWriter *w);

/* Batches (version 2): between begin_batch() and end_batch(), commits
 * (begin/add/end_commit, each as above) are collected in memory, not
 * written; end_batch() writes them all, each still its own COMMIT record
 * with its own sequence number, time, WAL position and page numbers (so a
 * restore can stop after any of them), the first holding the page images of
 * all of them compressed together (docs/ARCHIVE.md). end_batch() writes
 * all of the batch or, on failure, none of it (the segment and the writer
 * are as before begin_batch(), and the caller must consider none of its
 * commits archived). abort_batch() drops the batch. No other record may be
 * added during a batch. batch_size() is the number of commits collected
 * (and their page bytes in *@page_bytes): callers end a batch before it
 * holds too much. */
void sqlenvfs_archive_writer_begin_batch(SqlenvfsArchiveWriter *w);
guint sqlenvfs_archive_writer_batch_size(const SqlenvfsArchiveWriter *w, guint64 *page_bytes);
gboolean sqlenvfs_archive_writer_end_batch(SqlenvfsArchiveWriter *w, GError **error);
void sqlenvfs_archive_writer_abort_batch(SqlenvfsArchiveWriter *w);

/* Write new segments in format @version (SQLENVFS_ARCHIVE_VERSION_MIN to
 * SQLENVFS_ARCHIVE_VERSION; the default is SQLENVFS_ARCHIVE_VERSION). The
 * next record goes to a new segment when the current one has another
 * version (the current one is sealed first). For tests that need segments
 * as an older sqlenvfs wrote them. */
void sqlenvfs_archive_writer_set_version(SqlenvfsArchiveWriter *w, guint32 version);

/* Write the summary (<number>.sum, docs/ARCHIVE.md) of every sealed
 * segment that has none: those of archives written before summaries
 * existed, or whose summary could not be written when they were sealed
 * (the writer writes one at every seal). Each is built from its segment's
 * records; a segment that cannot be summarized (damaged) is skipped with a
 * warning. Also writes the newest sealed segment's file of last versions
 * when its summary asks for one and it is missing (a power cut between the
 * two renames of a seal). FALSE and *error only when the directory cannot
 * be listed. */
gboolean sqlenvfs_archive_writer_write_summaries(SqlenvfsArchiveWriter *w, GError **error);

/* Make everything appended so far durable (fdatasync of the segment; its
 * index, derived from it, is synced when the segment is sealed or closed). */
gboolean sqlenvfs_archive_writer_sync(SqlenvfsArchiveWriter *w, GError **error);

/* Record that capture was complete at @time. The records appended are
 * synced first if they are not yet (an alive time vouches for them). Writes
 * the alive file, and syncs it, when @time moved by @min_step_us or more
 * since it was last written (0: always). */
gboolean sqlenvfs_archive_writer_set_alive(SqlenvfsArchiveWriter *w, gint64 time,
                                           gint64 min_step_us, GError **error);

/* ------------------------------------------------------------------ */
/* Reading                                                              */

typedef struct {
  char *path;         /* the .seg file                                         */
  guint64 number;     /* segment number (from 1, consecutive)                  */
  guint64 first_seq;  /* from its header (summarized: its summary's)            */
  guint64 size;       /* file size when loaded (summarized: its summary's)     */
  gint64 created;     /* from its header (summarized: 0 until the file is read) */
  gboolean is_sealed; /* ends with a SEAL record                               */
  gboolean is_damaged;/* header unreadable, or records unreadable before its end */
  guint n_entries;    /* records loaded from it                                */
} SqlenvfsArchiveSegment;

typedef struct _SqlenvfsArchive SqlenvfsArchive;

/* Load the index of the archive in @dir (a missing directory is an empty
 * archive). Reads the index files only; a missing or damaged index is
 * rebuilt in memory by scanning its segment's record headers. Damage
 * (unreadable segments, missing sequence numbers) is represented by a
 * synthetic GAP entry with reason DAMAGED where records are missing.
 * NULL and *error only on an I/O error. */
SqlenvfsArchive *sqlenvfs_archive_open(const char *dir, GError **error);
void sqlenvfs_archive_free(SqlenvfsArchive *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsArchive, sqlenvfs_archive_free)

/* Load records appended since open (or the last refresh). */
gboolean sqlenvfs_archive_refresh(SqlenvfsArchive *a, GError **error);

/* The global entry list: every record of every segment, with the synthetic
 * DAMAGED gaps. Open and refresh do not load the entries of sealed segments
 * with a good summary (docs/ARCHIVE.md, "Segment summaries"); the first of
 * these three calls loads them all (memory grows with the history: for
 * tests and tools; a timeline uses the sparse reading below). */
guint sqlenvfs_archive_n_entries(const SqlenvfsArchive *a);
const SqlenvfsArchiveEntry *sqlenvfs_archive_entry(const SqlenvfsArchive *a, guint i);
guint sqlenvfs_archive_n_segments(const SqlenvfsArchive *a);
const SqlenvfsArchiveSegment *sqlenvfs_archive_segment(const SqlenvfsArchive *a, guint i);

/* The alive time of the archive: the alive file, or what the records say,
 * whichever is later (0 when empty). */
gint64 sqlenvfs_archive_alive(const SqlenvfsArchive *a);

/* The sequence number before which every record is known durable: the
 * alive file's (records before it were synced before it was written); 0
 * when there is no alive file. A power cut can take back records from it
 * on, and the writer would then append others with the same numbers. */
guint64 sqlenvfs_archive_durable_seq(const SqlenvfsArchive *a);

/* Index of the last entry whose time is <= @time, or -1 if none (binary
 * search; entries are in time order by invariant 5). */
gint sqlenvfs_archive_find_time(const SqlenvfsArchive *a, gint64 time);

/* ------------------------------------------------------------------ */
/* Sparse reading                                                       */
/*
 * The functions below answer what a timeline (windows, plans, retention)
 * needs without walking every entry: they address records by sequence
 * number and time, and list the few records that shape the history
 * ("marks"). They are the reading interface that scales with the data, not
 * with the history: for a sealed segment with a good summary the reader
 * keeps only the summary's header, marks and WAL generations, and reads
 * the segment's index when a question needs its entries (one such segment
 * at a time); only the last segment and segments without a usable summary
 * keep their entries in memory. Entries are returned by value (copied into
 * @out).
 */

/* Marks: every GAP and OUTAGE entry, real or synthetic (a DAMAGED gap that
 * stands for records missing or unreadable, seq 0), in archive order. For
 * each, *@after_seq (if not NULL) is the sequence number of the last real
 * record before it (0: none), so that marks and sequence numbers can be
 * ordered: a real GAP or OUTAGE of seq S has after_seq S - 1; a DAMAGED
 * gap standing for records X..Y has after_seq X - 1, and none of X..Y can be
 * read. Pointers are valid until the next refresh or check. */
guint sqlenvfs_archive_n_marks(const SqlenvfsArchive *a);
const SqlenvfsArchiveEntry *sqlenvfs_archive_mark(const SqlenvfsArchive *a, guint i,
                                                  guint64 *after_seq);

/* The sequence numbers of the first and last real records (FALSE when the
 * archive holds none). */
gboolean sqlenvfs_archive_bounds(const SqlenvfsArchive *a, guint64 *first_seq,
                                 guint64 *last_seq);

/* The number the archive in @dir gives its next record, as far as it is
 * written now: 0 when there is no archive, it holds no record, or it
 * cannot be read. Read before a state is pinned and after, for a state
 * pinned while the WAL held no frame (whose time alone places it): the
 * commits of the records below the first are in the state, and those
 * from the second on are not, whatever the clock said. */
guint64 sqlenvfs_archive_next_seq(const char *dir);

/* As sqlenvfs_archive_next_seq(); when that is not 0 and the last record
 * reads, also *@has_last_crc TRUE and *@last_crc, that record's header
 * checksum (sqlenvfs_archive_entry_header_crc): it tells this archive's
 * record of that number from another history's (either may be NULL). */
guint64 sqlenvfs_archive_next_seq_crc(const char *dir, gboolean *has_last_crc,
                                      guint32 *last_crc);

/* For a state pinned while the WAL was empty, found at record @state_seq
 * by its pin time: NULL when that agrees with the next record numbers
 * read before the pin (@before) and after it (@after; 0: not known), else
 * what disagrees (free with g_free): a clock stepped back between the
 * archiving of the last commits and the pin, or after the pin. */
char *sqlenvfs_archive_pin_misplaced(SqlenvfsArchive *a, guint64 state_seq, guint64 before,
                                     guint64 after);

/* The record with sequence number @seq, when the archive holds it and it is
 * readable (not pruned, missing or found damaged). */
gboolean sqlenvfs_archive_get(SqlenvfsArchive *a, guint64 seq, SqlenvfsArchiveEntry *out);

/* The last state entry (sqlenvfs_archive_entry_is_state) whose time is
 * <= @time and whose seq is in [@min_seq, @max_seq] (FALSE: none). */
gboolean sqlenvfs_archive_last_state(SqlenvfsArchive *a, gint64 time, guint64 min_seq,
                                     guint64 max_seq, SqlenvfsArchiveEntry *out);

/* The last COMMIT record at WAL position (@salt1, @salt2, @frame, @cksum1,
 * @cksum2) (FALSE: none). */
gboolean sqlenvfs_archive_find_commit(SqlenvfsArchive *a, guint32 salt1, guint32 salt2,
                                      guint32 frame, guint32 cksum1, guint32 cksum2,
                                      SqlenvfsArchiveEntry *out);

/* The same, among the records up to @max_seq. */
gboolean sqlenvfs_archive_find_commit_upto(SqlenvfsArchive *a, guint32 salt1, guint32 salt2,
                                           guint32 frame, guint32 cksum1, guint32 cksum2,
                                           guint64 max_seq, SqlenvfsArchiveEntry *out);

/* From the state entry @seq on, the last COMMIT with seq <= @max_seq
 * reached before a COMMIT of another WAL generation (salts), or the entry
 * @seq itself when the next COMMIT is of another generation (FALSE when
 * @seq is not readable). */
gboolean sqlenvfs_archive_generation_end(SqlenvfsArchive *a, guint64 seq, guint64 max_seq,
                                         SqlenvfsArchiveEntry *out);

/* The COMMIT records with seq in (@after_seq, @upto_seq]: how many, the
 * bytes they take in the segments, and the database size in pages after
 * the last of them (*@db_pages unchanged when there is none). */
void sqlenvfs_archive_count_commits(SqlenvfsArchive *a, guint64 after_seq, guint64 upto_seq,
                                    guint64 *n_commits, guint64 *bytes, guint32 *db_pages);

/* Call @fn with a copy of each readable record whose seq is in
 * (@after_seq, @upto_seq], in seq order, segment by segment (a summarized
 * segment's entries are read from its index while it is walked, one segment
 * at a time); the walk stops when @fn returns FALSE. Records missing or
 * found damaged are not passed: a caller that needs the range whole checks
 * that the sequence numbers it gets are consecutive. */
typedef gboolean (*SqlenvfsArchiveEntryFunc)(gpointer user, const SqlenvfsArchiveEntry *e);
void sqlenvfs_archive_walk(SqlenvfsArchive *a, guint64 after_seq, guint64 upto_seq,
                           SqlenvfsArchiveEntryFunc fn, gpointer user);

/* Add to @set (a GHashTable of GUINT_TO_POINTER page numbers) every page
 * written by a COMMIT record with seq in (@after_seq, @upto_seq], and set
 * *@n_commits (may be NULL) to how many COMMIT records that is. A sealed
 * segment with a good summary answers from its page map, the others by
 * reading their records (each checked as read_commit does). GAP when a
 * record of the range is missing or a chain starts in it (the set is then
 * partly filled: discard it); INTEGRITY when a record read is corrupt. */
gboolean sqlenvfs_archive_pages_written(SqlenvfsArchive *a, guint64 after_seq,
                                        guint64 upto_seq, GHashTable *set, guint64 *n_commits,
                                        GError **error);

/* Read the COMMIT record @e in full, checking it against its index entry
 * and its checksum (a compressed one also its blocks' checksums and
 * decompressed lengths, as read_commit_pages does). Returns its page
 * numbers (n_pages of them; free with g_free) and sets *data_offset to the
 * offset in the segment of its first page image (page i is at data_offset +
 * i * page_size) when it is stored uncompressed, to 0 when it is compressed
 * (SQLENVFS_ARCHIVE_COMPRESSED). NULL and INTEGRITY naming the segment file
 * and the record when it is corrupt. */
guint32 *sqlenvfs_archive_read_commit(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e,
                                      guint64 *data_offset, GError **error);

/* Read and check the COMMIT record @e as read_commit does and return its
 * page numbers, with its n_pages page images, in the same order, in
 * *@pages (n_pages * page_size bytes, decompressed when the record is
 * compressed; free both with g_free). A compressed record is checked whole:
 * its checksum, every block's checksum and every block's decompressed
 * length; any mismatch is INTEGRITY naming the segment file and the record,
 * never a wrong page. NULL and *error on failure (*@pages untouched). */
guint32 *sqlenvfs_archive_read_commit_pages(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e,
                                            guint8 **pages, GError **error);

/* The first record of the batch of the COMMIT @e (flag
 * SQLENVFS_ARCHIVE_BATCHED), which holds its page images from index
 * *@first on among its pages (for a record source), or NULL when it is not
 * there or does not match (the record is then unreadable). */
const SqlenvfsArchiveEntry *sqlenvfs_archive_batch_first(SqlenvfsArchive *a,
                                                         const SqlenvfsArchiveEntry *e,
                                                         guint32 *first);

/* A source of page images from the compressed COMMIT records of one
 * segment, for an image (image.h): register the pages a rebuild uses, then
 * the image reads them through sqlenvfs_archive_record_source_read(), which
 * reads and decompresses the page's block (a thread keeps the few blocks
 * it read last, whatever the number of sources), checking the block's
 * checksum and decompressed length on every read (a mismatch is an
 * INTEGRITY error naming the segment, never a wrong page).
 * It opens the segment file itself and does not refer to @a after new(). */
typedef struct _SqlenvfsArchiveRecordSource SqlenvfsArchiveRecordSource;

SqlenvfsArchiveRecordSource *sqlenvfs_archive_record_source_new(SqlenvfsArchive *a, guint segment,
                                                                GError **error);
/* The byte offset, in the source, of page image @k of the compressed COMMIT
 * record @e (which must be in the source's segment and should have been
 * checked with read_commit). */
goffset sqlenvfs_archive_record_source_add(SqlenvfsArchiveRecordSource *src,
                                           const SqlenvfsArchiveEntry *e, guint32 k);
/* A SqlenvfsPreadFunc reading from the page images registered. */
gssize sqlenvfs_archive_record_source_read(gpointer src, void *buf, gsize len, goffset off,
                                           GError **error);
/* Close and free; usable as the GDestroyNotify of an image source. */
void sqlenvfs_archive_record_source_free(gpointer src);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SqlenvfsArchiveRecordSource, sqlenvfs_archive_record_source_free)

/* Compose the state after record @target_seq on @img, an image (image.h)
 * of @page_size-byte pages over a base that holds the state after record
 * @base_seq (@base_pages pages): every page written in (@base_seq,
 * @target_seq] is set to its last version there (pages past a shrink to
 * zeros, unless written again), and the image's size to the database's
 * size after @target_seq (also in *@n_pages). Sealed segments with a good
 * summary are composed from its page map (a binary search per page; only
 * the images used are read later, each checked as it is read), the others
 * from their records, read and checked whole; the image is the same either
 * way (docs/ARCHIVE.md, "Composing a state"). GAP when a record in the
 * range is missing or damaged, or a chain starts in it; INTEGRITY when a
 * record is corrupt or has another page size; *error and FALSE then, with
 * @img partly set (discard it). @progress (may be NULL) is told the bytes
 * of COMMIT records composed so far, of those in the range. */
gboolean sqlenvfs_archive_compose(SqlenvfsArchive *a, SqlenvfsImage *img, guint32 page_size,
                                  guint64 base_seq, guint32 base_pages, guint64 target_seq,
                                  guint32 *n_pages, SqlenvfsProgressFunc progress, gpointer user,
                                  GError **error);

/* Read every COMMIT record of @a in full and check it as read_commit does,
 * segment by segment (a sealed segment with a summary has its index read
 * only while it is checked, and only when it is not known checked), and
 * replace each one that fails by a synthetic GAP entry (reason DAMAGED,
 * seq 0, its segment, offset and length kept), so that windows and plans
 * never bridge it and a later base starts a new chain: the sparse reading
 * gives it as a mark (after_seq: the record before it) and get() no longer
 * finds it. A segment with a damaged record keeps its entries in memory
 * from then on; the others stay as they were. What was found is
 * remembered per segment file while the file is unchanged (dev, inode,
 * size, mtime, ctime): in the process, and, when @memo_path is not NULL, in
 * that file (checksummed, written atomically, 0600; unreadable or damaged
 * means forgotten), so that other processes need not read again. A segment
 * that only grew has only its new records read; one changed in place is
 * read again. Returns how many records are damaged, or -1 and *error on an
 * I/O error. */
int sqlenvfs_archive_check_records(SqlenvfsArchive *a, const char *memo_path, GError **error);

/* Segment and summary files filled on demand (mount --remote): a process
 * may install one hook that every read of an archive file goes through
 * first. Asked about @len bytes at @off of the file @path, it answers LOCAL
 * when @path is not one of its files (the read goes on as usual), READY
 * once those bytes are in the file and were checked as they arrived (of a
 * segment: every record they touch read whole and checked against its
 * index entry and its own crc32; of a summary: every part they touch that
 * came whole checked against its crc32, the readers' own checks applying
 * as on a root), or
 * FAILED with *error (nothing is read then: a damaged or short range is an
 * error, never other bytes). With @len 0 it only says whether @path is one
 * of its files (READY) or not (LOCAL). check_records does not read the
 * segments the hook fills on demand (their records are checked as they are
 * fetched, which is when they are read), so that opening a timeline does
 * not fetch every record. Install it before any archive is read, once; NULL
 * removes it. */
typedef enum {
  SQLENVFS_ARCHIVE_IO_LOCAL,
  SQLENVFS_ARCHIVE_IO_READY,
  SQLENVFS_ARCHIVE_IO_FAILED,
} SqlenvfsArchiveIo;
typedef SqlenvfsArchiveIo (*SqlenvfsArchiveFetchFunc)(gpointer user, const char *path,
                                                      guint64 off, gsize len, GError **error);
void sqlenvfs_archive_set_fetch_hook(SqlenvfsArchiveFetchFunc fetch, gpointer user);

/* Holes files (docs/REPLICA.md, rule 3 of the layout): a reader of a
 * replica that assembles a segment from its parts declares the byte ranges
 * no good part held in "<N>.holes" beside it, and the scan of that segment
 * steps over them. An archive reads them only when its directory lies
 * under a tree registered here, in this process, by that reader (its own
 * temporary tree); a ".holes" anywhere else (a root's own archive, a copy
 * of such a tree) is ignored, with a message. Each registration of @dir is
 * undone by one untrust. */
void sqlenvfs_archive_trust_holes_under(const char *dir);
void sqlenvfs_archive_untrust_holes_under(const char *dir);

/* Forget, in this process, what check_records found and which summaries
 * were found not to match their segments (tests, as a new process; a
 * caller that wants every record read again). */
void sqlenvfs_archive_forget_checks(void);

/* The reason text of a GAP record (newly allocated; "" for synthetic ones). */
char *sqlenvfs_archive_read_gap_text(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e,
                                     GError **error);

/* ------------------------------------------------------------------ */
/* Verification                                                         */

/* Called once per problem found: @file is the segment (or index) file, and
 * @message says what is wrong with it. */
typedef void (*SqlenvfsArchiveProblemFunc)(gpointer user, const char *file, const char *message);

typedef struct {
  guint n_segments;
  guint n_skipped;   /* of them, not read: verified before (memo below)  */
  guint64 n_records;
  guint64 n_commits;
  guint64 n_gaps;
  guint64 bytes;
  guint n_problems;
} SqlenvfsArchiveVerifyResult;

/* What verify found of one sealed segment that it read completely and that
 * had no problem: enough to continue the chain past it without reading it
 * again. */
typedef struct {
  guint64 size;       /* of the segment file                              */
  guint64 first_seq;  /* from its header                                  */
  guint32 prev_crc;   /* from its header: the previous segment's seal     */
  guint32 seal;       /* the crc32 its SEAL record carries                */
  guint64 next_seq;   /* the seq after its SEAL record                    */
  guint64 n_records, n_commits, n_gaps;
} SqlenvfsArchiveSegmentFacts;

/* A memory of earlier verifications (verifymemo.h keeps one on disk).
 *   known     asked, for a segment whose header is good, whether it was
 *             verified before and has not changed since (its file and its
 *             index's @idx_path); TRUE and *facts as they were found then
 *             to skip reading it. The skip is refused (the segment is read)
 *             unless the header agrees with *facts (size, first seq,
 *             previous seal) and the SEAL record at the end of the file is
 *             intact and carries facts->seal and seq facts->next_seq - 1.
 *   verified  told of each sealed segment read completely without a problem
 *             (its chain to the previous one included). */
typedef struct {
  gboolean (*known)(gpointer user, const char *seg_path, const char *idx_path,
                    SqlenvfsArchiveSegmentFacts *facts);
  void (*verified)(gpointer user, const char *seg_path, const char *idx_path,
                   const SqlenvfsArchiveSegmentFacts *facts);
  gpointer user;
  /* Optional (NULL: the summary of every skipped segment is loaded and
   * checked again):
   *   summary_known     asked, for the summary @sum_path of a segment
   *                     skipped as known (sealed with @seal), whether it
   *                     was found good for that segment before and has not
   *                     changed since, nor has the segment's file of last
   *                     versions @last_path (nor appeared or gone: it is
   *                     checked with the summary); TRUE to skip reading
   *                     both.
   *   summary_verified  told of each summary found good for its segment
   *                     (sealed with @seal), with its file of last
   *                     versions @last_path (good, or not there). */
  gboolean (*summary_known)(gpointer user, const char *sum_path, const char *last_path,
                            guint32 seal);
  void (*summary_verified)(gpointer user, const char *sum_path, const char *last_path,
                           guint32 seal);
  /* TRUE: a compressed block of a segment read is checked by its crc32 and
   * its zstd frame header (content size, frame length) instead of being
   * decompressed; the record's checksum covers every byte as stored
   * either way. FALSE (verify --full): every block is decompressed. */
  gboolean frames_only;
} SqlenvfsArchiveVerifyMemo;

/* Check every segment of the archive in @dir completely: headers, every
 * record's checksums, each seal's segment checksum, the chain from segment
 * to segment (numbers, sequence numbers, previous seal checksums), that
 * each index matches its segment, and that every segment missing before the
 * first one present is recorded in the prune log (each line's checksum
 * checked, the first segment chained to the last pruned one). An incomplete last record of the last
 * segment (a write the archiver had not finished) is not a problem. Returns
 * TRUE when nothing is wrong; otherwise FALSE with INTEGRITY naming the first
 * bad file (every problem was passed to @problem). */
gboolean sqlenvfs_archive_verify(const char *dir, SqlenvfsArchiveProblemFunc problem,
                                 gpointer user, SqlenvfsArchiveVerifyResult *result,
                                 GError **error);

/* sqlenvfs_archive_verify, skipping the sealed segments @memo (may be NULL:
 * read everything) knows as verified before and unchanged; their headers
 * are still read and chained, and their seal records checked. */
gboolean sqlenvfs_archive_verify_with(const char *dir, const SqlenvfsArchiveVerifyMemo *memo,
                                      SqlenvfsArchiveProblemFunc problem, gpointer user,
                                      SqlenvfsArchiveVerifyResult *result, GError **error);

/* ------------------------------------------------------------------ */
/* Pruning                                                              */

/* Remove whole segments of @dir whose every record has seq < @keep_from_seq,
 * oldest first, never the last segment. Before anything is unlinked, one
 * line per segment is appended to the prune log @dir/PRUNED and synced
 * (docs/ARCHIVE.md), so that verify tells a pruned segment from a lost one.
 * Returns how many were removed (or would be, with @dry_run, which writes
 * nothing); their paths are added to @removed if non-NULL. -1 and *error on
 * failure (segments logged but not yet removed stay, and are pruned again
 * next time). */
int sqlenvfs_archive_prune(const char *dir, guint64 keep_from_seq, gboolean dry_run,
                           GPtrArray *removed, GError **error);

G_END_DECLS
