/*
 * The acknowledgement engine (the contract is in ack.h).
 *
 * A source's marks are a doubly linked list, oldest first. A batch keeps an
 * array of pointers to the marks it holds. Settling a mark merges it with a
 * settled neighbour (the later offset is the one that matters), then passes
 * the settled marks at the head: what stays in the list is an unsettled
 * mark at the head, and never two settled marks side by side.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ack.h"

struct lv_ack_mark {
    uint64_t offset;
    struct lv_ack_mark *prev, *next;
    struct lv_ack_marks *list; /* NULL once its source is gone */
    bool settled;
    bool held; /* a batch points to it */
};

struct lv_ack_marks {
    struct lv_ack_mark *head, *tail;
    size_t n;
    uint64_t acked;
    uint64_t last_offset; /* of the newest mark, for the checks */
};

/* ---- marks -------------------------------------------------------------------------- */

struct lv_ack_marks *lv_ack_marks_new(uint64_t offset)
{
    struct lv_ack_marks *m = lv_xcalloc(1, sizeof *m);
    m->acked = m->last_offset = offset;
    return m;
}

static void unlink_free(struct lv_ack_marks *m, struct lv_ack_mark *k)
{
    assert(!k->held);
    if (k->prev)
        k->prev->next = k->next;
    else
        m->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        m->tail = k->prev;
    m->n--;
    free(k);
}

void lv_ack_marks_close(struct lv_ack_marks *m)
{
    if (!m)
        return;
    for (struct lv_ack_mark *k = m->head, *next; k; k = next) {
        next = k->next;
        if (k->held)
            k->list = NULL; /* its batch frees it */
        else
            free(k);
    }
    free(m);
}

void lv_ack_mark(struct lv_ack_marks *m, uint64_t offset, struct lv_batch *b)
{
    assert(offset >= m->last_offset); /* offsets never go back */
    struct lv_ack_mark *k = lv_xcalloc(1, sizeof *k);
    k->offset = offset;
    k->list = m;
    k->held = true;
    k->prev = m->tail;
    if (m->tail)
        m->tail->next = k;
    else
        m->head = k;
    m->tail = k;
    m->n++;
    m->last_offset = offset;
    if (b->nmarks == b->capmarks) {
        b->capmarks = b->capmarks ? b->capmarks * 2 : 4;
        b->marks = lv_xrealloc(b->marks, b->capmarks * sizeof *b->marks);
    }
    b->marks[b->nmarks++] = k;
}

static void settle_mark(struct lv_ack_mark *k)
{
    assert(k->held && !k->settled); /* settled once, by its batch */
    struct lv_ack_marks *m = k->list;
    k->held = false;
    if (!m) {
        free(k);
        return;
    }
    k->settled = true;
    if (k->next && k->next->settled) {
        k->offset = k->next->offset;
        unlink_free(m, k->next);
    }
    if (k->prev && k->prev->settled) {
        k->prev->offset = k->offset;
        unlink_free(m, k);
    }
    while (m->head && m->head->settled) {
        assert(m->head->offset >= m->acked); /* never back */
        m->acked = m->head->offset;
        unlink_free(m, m->head);
    }
}

static void forget_mark(struct lv_ack_mark *k)
{
    assert(k->held);
    k->held = false;
    if (!k->list)
        free(k); /* else it stays in its list, unsettled, until the source goes */
}

uint64_t lv_ack_acked(const struct lv_ack_marks *m)
{
    return m->acked;
}

size_t lv_ack_marks_count(const struct lv_ack_marks *m)
{
    return m->n;
}

/* ---- batches ------------------------------------------------------------------------- */

void lv_ack_batch_open(struct lv_batch *b, uint32_t outputs)
{
    b->pending = outputs;
}

bool lv_ack_batch_done(struct lv_batch *b, unsigned i)
{
    uint32_t bit = UINT32_C(1) << i;
    if (!(b->pending & bit))
        abort(); /* settled twice by one output, or by one it was not for */
    b->pending &= ~bit;
    return b->pending == 0;
}

void lv_ack_batch_settle(struct lv_batch *b)
{
    assert(b->pending == 0);
    for (size_t k = 0; k < b->nmarks; k++)
        settle_mark(b->marks[k]);
    b->nmarks = 0;
}

void lv_ack_batch_forget(struct lv_batch *b)
{
    for (size_t k = 0; k < b->nmarks; k++)
        forget_mark(b->marks[k]);
    b->nmarks = 0;
}

void lv_ack_batch_free(struct lv_batch *b)
{
    lv_ack_batch_forget(b);
    free(b->marks);
    b->marks = NULL;
    b->capmarks = 0;
}

size_t lv_ack_batch_bytes(const struct lv_batch *b)
{
    return b->capmarks * sizeof *b->marks + 2 * b->nmarks * sizeof(struct lv_ack_mark);
}

bool lv_ack_batch_durable(const struct lv_batch *b)
{
    for (; b; b = b->parent)
        if (b->spool_id)
            return true;
    return false;
}

void lv_ack_split(struct lv_batch *b, unsigned i, const uint8_t *outcomes, struct lv_batch *part)
{
    assert(b->pending & (UINT32_C(1) << i));
    assert(part->n == 0 && part->data.len == 0 && part->nmarks == 0);
    for (size_t r = 0; r < b->n; r++) {
        if (outcomes[r] != LV_RETRY)
            continue;
        struct lv_record rec = b->recs[r];
        if (part->n == part->cap) {
            part->cap = part->cap ? part->cap * 2 : 64;
            part->recs = lv_xrealloc(part->recs, part->cap * sizeof *part->recs);
        }
        /* A subset of b's records fits wherever b's did. */
        if (lv_buf_append(&part->data, b->data.data + rec.off, rec.len + 1u) < 0)
            abort();
        rec.off = part->data.len - rec.len - 1u;
        part->recs[part->n++] = rec;
    }
    part->seq = b->seq;
    part->parent = b;
    part->pending = UINT32_C(1) << i;
}
