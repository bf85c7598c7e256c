#!/usr/bin/env python3
"""gen_normalize_vectors.py: writes tests/tokenizer/data/normalize_vectors.txt,
the reference for test_normalize.c, from Python's unicodedata (its Unicode
version must match engine/tokenizer/unicode_tables.c; it is the first line).
Run: python3 tests/tokenizer/gen_normalize_vectors.py > tests/tokenizer/data/normalize_vectors.txt
Each line: source; NFC; NFD; NFKC; NFKD as space-separated hex code points
(the NormalizationTest.txt layout). Cases: every code point that some form
changes is a candidate; 800 of them are sampled (the file stays small; the C
test checks every code point for the conformance properties), then deterministic
random strings mixing starters, marks of many combining classes, Hangul
jamo, singletons, exclusions and compatibility characters, so that
reordering, blocking and composition across characters are exercised."""
import random
import sys
import unicodedata as ud

FORMS = ('NFC', 'NFD', 'NFKC', 'NFKD')


def valid(cp):
    return not 0xD800 <= cp < 0xE000


def line(s):
    return '; '.join(' '.join('%04X' % ord(c) for c in x)
                     for x in [s] + [ud.normalize(f, s) for f in FORMS])


def main():
    out = sys.stdout
    # the fast paths in engine/tokenizer/normalize.c rely on these bounds
    for cp in range(0x300):
        assert ud.normalize('NFC', chr(cp)) == chr(cp)
    for cp in range(0xA0):
        assert ud.normalize('NFKD', chr(cp)) == chr(cp)
    out.write('# unicode %s\n' % ud.unidata_version)
    changing = []
    for cp in range(0x110000):
        if not valid(cp): continue
        c = chr(cp)
        if any(ud.normalize(f, c) != c for f in FORMS):
            changing.append(cp)
    rng = random.Random(20240514)
    singles = sorted(rng.sample(changing, 800) + [0x1E0A, 0x0344, 0x0958, 0x2126, 0xFB2C, 0x1E9B, 0xFDFA, 0xAC00,
                                                    0xD7A3, 0xD4DB, 0x0F73, 0x0F75, 0x0F81, 0x2ADC, 0x1D15E, 0x1D1BB])
    for cp in singles:
        out.write(line(chr(cp)) + '\n')
    marks = [cp for cp in range(0x110000) if valid(cp) and ud.combining(chr(cp))]
    starters = ([ord(c) for c in 'aeiouAEIOUnNcCsSzZ ,.1'] + [0x3B1, 0x3C9, 0x399, 0x415, 0x438, 0x5D0, 0x627,
                0x915, 0x9C7, 0xB47, 0x1100, 0x1112, 0xAC00, 0xD7A3, 0x3042, 0x304B, 0x30AB, 0x4E00])
    jamo = list(range(0x1100, 0x1113)) + list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3))
    pool = [changing, marks, starters, jamo]
    for _ in range(1000):
        n = rng.randint(1, 8)
        s = ''.join(chr(rng.choice(pool[rng.choice((0, 1, 1, 2, 2, 3))])) for _ in range(n))
        out.write(line(s) + '\n')


main()
