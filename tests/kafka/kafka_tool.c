/*
 * A helper for the Kafka tests, built on librdkafka (not on logveil):
 *
 *   kafka_tool mock BROKERS
 *       Runs librdkafka's mock cluster (the Kafka protocol on loopback) with
 *       BROKERS brokers, prints its bootstrap servers on a line, then takes
 *       commands on stdin, one a line, answering "ok" or "error: why":
 *         topic NAME PARTITIONS        create a topic (replication 3 or fewer)
 *         errors COUNT ERROR...        the next COUNT Produce requests fail with
 *                                      the ERRORs in turn (names as rd_kafka_err2name
 *                                      gives them: NOT_LEADER_FOR_PARTITION, ...)
 *         down ID | up ID              a broker goes down (its connections are
 *                                      closed and refused) or comes back
 *         rtt ID MS                    a broker answers MS milliseconds late
 *       It exits at the end of stdin.
 *
 *   kafka_tool create-topic BOOTSTRAP NAME PARTITIONS
 *       Creates a topic on a real broker (replication 1) with the Admin API.
 *
 * The mock cluster's thread polls with poll() and ends on EINTR
 * (protocols.md §4.5), so every signal is blocked before it is created.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCE_API 0 /* Kafka's ApiKey for Produce; the enum is not public */

static int err_by_name(const char *name, rd_kafka_resp_err_t *out)
{
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++)
        if (descs[i].name && strcmp(descs[i].name, name) == 0) {
            *out = descs[i].code;
            return 0;
        }
    return -1;
}

static void command(rd_kafka_mock_cluster_t *mc, char *line)
{
    char *save = NULL, *verb = strtok_r(line, " \t\n", &save);
    char *a = strtok_r(NULL, " \t\n", &save), *b = strtok_r(NULL, " \t\n", &save);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!verb) {
        printf("error: empty command\n");
    } else if (strcmp(verb, "topic") == 0 && a && b) {
        int parts = atoi(b);
        err = rd_kafka_mock_topic_create(mc, a, parts, 3);
        printf(err ? "error: %s\n" : "ok\n", rd_kafka_err2str(err));
    } else if (strcmp(verb, "errors") == 0 && a && b) {
        rd_kafka_resp_err_t errs[64];
        size_t n = 0;
        for (char *e = b; e && n < 64; e = strtok_r(NULL, " \t\n", &save)) {
            if (err_by_name(e, &errs[n]) < 0) {
                printf("error: no error named %s\n", e);
                fflush(stdout);
                return;
            }
            n++;
        }
        size_t count = (size_t)atoi(a);
        rd_kafka_resp_err_t *all = calloc(count ? count : 1, sizeof *all);
        for (size_t i = 0; i < count; i++)
            all[i] = errs[i % n];
        rd_kafka_mock_push_request_errors_array(mc, PRODUCE_API, count, all);
        free(all);
        printf("ok\n");
    } else if ((strcmp(verb, "down") == 0 || strcmp(verb, "up") == 0) && a) {
        err = strcmp(verb, "down") == 0 ? rd_kafka_mock_broker_set_down(mc, atoi(a))
                                        : rd_kafka_mock_broker_set_up(mc, atoi(a));
        printf(err ? "error: %s\n" : "ok\n", rd_kafka_err2str(err));
    } else if (strcmp(verb, "rtt") == 0 && a && b) {
        err = rd_kafka_mock_broker_set_rtt(mc, atoi(a), atoi(b));
        printf(err ? "error: %s\n" : "ok\n", rd_kafka_err2str(err));
    } else {
        printf("error: unknown command %s\n", verb);
    }
    fflush(stdout);
}

static int mock(int brokers)
{
    char errstr[512], line[4096];
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_tool: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "kafka_tool: cannot create the mock cluster\n");
        return 1;
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    while (fgets(line, sizeof line, stdin))
        command(mc, line);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}

static int create_topic(const char *bootstrap, const char *name, int partitions)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr)) {
        fprintf(stderr, "kafka_tool: %s\n", errstr);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_tool: %s\n", errstr);
        return 1;
    }
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, partitions, 1, errstr, sizeof errstr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, 20000, errstr, sizeof errstr);
    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = 1;
    if (!ev) {
        fprintf(stderr, "kafka_tool: no answer to CreateTopics in 30 s\n");
    } else if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "kafka_tool: %s\n", rd_kafka_event_error_string(ev));
    } else {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rd_kafka_resp_err_t err = n ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            fprintf(stderr, "kafka_tool: %s: %s\n", name, rd_kafka_topic_result_error_string(res[0]));
        else
            rc = 0;
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "mock") == 0)
        return mock(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "create-topic") == 0)
        return create_topic(argv[2], argv[3], atoi(argv[4]));
    fprintf(stderr, "usage: kafka_tool mock BROKERS | create-topic BOOTSTRAP NAME PARTITIONS\n");
    return 2;
}
