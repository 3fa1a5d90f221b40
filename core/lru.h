/*
 * lru.h - the doubly linked list that both caches keep in recency order,
 * most recent first: server/imgcache.c (images) and server/prefix.c (prompt
 * prefixes).  For a list type with `head` and `tail` and an entry type with
 * `prev` and `next`, LRU_FUNCS(name, list_t, entry_t) defines
 * name_unlink(list, entry) and name_push_front(list, entry).  A macro, so
 * that each cache keeps its own types and its loops over them stay plain.
 */
#ifndef FL_LRU_H
#define FL_LRU_H

#define LRU_FUNCS(name, list_t, entry_t)                                                                     \
    static void name##_unlink(list_t *l, entry_t *e) {                                                       \
        if (e->prev)                                                                                         \
            e->prev->next = e->next;                                                                         \
        else                                                                                                 \
            l->head = e->next;                                                                               \
        if (e->next)                                                                                         \
            e->next->prev = e->prev;                                                                         \
        else                                                                                                 \
            l->tail = e->prev;                                                                               \
        e->prev = e->next = NULL;                                                                            \
    }                                                                                                        \
    static void name##_push_front(list_t *l, entry_t *e) {                                                   \
        e->prev = NULL;                                                                                      \
        e->next = l->head;                                                                                   \
        if (l->head) l->head->prev = e;                                                                      \
        l->head = e;                                                                                         \
        if (!l->tail) l->tail = e;                                                                           \
    }

#endif
