/*
 * grammar_params.c: the grammar of a generate request, from whichever of
 * vki_generate_params.grammar / .json_schema it sets.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/grammar.h"
#include "error.h"

vki_status gram_from_params(const vki_generate_params *gp, gram_grammar **out)
{
    *out = NULL;
    if (!gp || (!gp->grammar && !gp->json_schema)) return VKI_OK;
    if (gp->grammar && gp->json_schema)
        return vki_fail(VKI_ERR_INVALID_ARGUMENT, "generate: set grammar or json_schema, not both");
    if (gp->grammar) return gram_parse(gp->grammar, strlen(gp->grammar), out);
    char *text = NULL;
    VKI_TRY(gram_from_json_schema(gp->json_schema, strlen(gp->json_schema), &text));
    vki_status st = gram_parse(text, strlen(text), out);
    if (st != VKI_OK) st = vki_fail_prefix(st, "json_schema");
    free(text);
    return st;
}
