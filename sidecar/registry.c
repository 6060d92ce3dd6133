/*
 * Registration: which type implements each input and output kind.
 */
#include "registry.h"

extern const struct lv_input_type lv_input_stdin;
extern const struct lv_input_type lv_input_tail;
extern const struct lv_output_type lv_output_stdout;
extern const struct lv_output_type lv_output_file;
extern const struct lv_output_type lv_output_elasticsearch;
extern const struct lv_output_type lv_output_loki;
extern const struct lv_output_type lv_output_kafka;

static const struct lv_input_type *const inputs[] = {
    [LV_INPUT_STDIN] = &lv_input_stdin,
    [LV_INPUT_TAIL] = &lv_input_tail,
};

static const struct lv_output_type *const outputs[] = {
    [LV_OUTPUT_STDOUT] = &lv_output_stdout,
    [LV_OUTPUT_FILE] = &lv_output_file,
    [LV_OUTPUT_ELASTICSEARCH] = &lv_output_elasticsearch,
    [LV_OUTPUT_LOKI] = &lv_output_loki,
    [LV_OUTPUT_KAFKA] = &lv_output_kafka,
};

const struct lv_input_type *lv_registry_input(enum lv_input_kind kind)
{
    return (unsigned)kind < LV_ARRAY_LEN(inputs) ? inputs[kind] : NULL;
}

const struct lv_output_type *lv_registry_output(enum lv_output_kind kind)
{
    return (unsigned)kind < LV_ARRAY_LEN(outputs) ? outputs[kind] : NULL;
}
