#!/usr/bin/env python3
"""gen_ugm_vectors.py: writes tests/tokenizer/data/ugm_*.json, the reference
ids for test_tok_ugm (SentencePiece unigram tokenization), from the two
libraries that define the behaviour: `sentencepiece` for the GGUF form
(tokenizer.ggml.model = "t5", which llama.cpp runs with SentencePiece's
rules) and Hugging Face `tokenizers` for the tokenizer.json forms.

Not run by the tests. Needs: pip install sentencepiece==0.2.3 tokenizers
Run:   python3 tools/spm/gen_ugm_vectors.py [--check-tool BUILD_DIR]

The vocabularies are the unigram models in the sentencepiece 0.2.3 sdist
(test/botchan_en_unigram_1000.model, test/kyoto_ja_unigram_8000.model),
fetched with `pip download`, the same way tests/tokenizer/test_tok_ugm.sh
fetches them; their sha256 are recorded in the vectors. Variants:
  botchan      GGUF (sentencepiece) + tokenizer.json as XLM-R (bge-m3,
               multilingual-e5) and as older T5 files
  kyoto        GGUF + tokenizer.json as transformers' T5 converter writes
  botchan_bf   botchan with user-defined pieces and 256 byte pieces appended
               and byte fallback on (vkinfer-spm-convert --byte-fallback
               --user-defined ...), GGUF + T5-style tokenizer.json
The HF tokenizers are built here with the `tokenizers` API after the
converters' code (transformers' XLMRobertaConverter / T5Converter, in the
versions that wrote the files on the Hub). --check-tool BUILD_DIR also
converts each model with BUILD_DIR's vkinfer-spm-convert and checks that
HF `tokenizers`, loading those files, gives the same ids as the ones
built here (so the tool's files mean what the vectors assume).
"""
import argparse
import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

SDIST = 'sentencepiece==0.2.3'
USER_DEFINED = ['<sep>', '[MASK]']
META = '\u2581'

TEXTS = [
    '',
    ' ',
    '  ',
    '\t',
    '\n',
    ' \n ',
    'Hello world',
    'hello world',
    'Hello World!',
    ' Hello world',
    '  Hello world',
    'Hello world ',
    'Hello world   ',
    '   Hello   world   ',
    'Hello\tworld',
    'Hello\nworld',
    'Hello\n\nworld\n',
    'Hello \n world',
    'line one\r\nline two',
    'The quick brown fox jumps over the lazy dog.',
    'I am a cat. As yet I have no name.',
    "It's 5 o'clock, isn't it? \"Yes,\" she said.",
    'e-mail: someone@example.com, web: https://example.org/a?b=c&d=e',
    'C:\\Program Files\\vkinfer\\bin',
    'def f(x):\n    return x ** 2  # square',
    '{"key": [1, 2, 3], "other": null}',
    '1234567890',
    '3.14159 2,718 1/2 -42 +7 1e-9 100%',
    '$100 €50 £20 ¥1000',
    '2024-01-31T12:34:56Z',
    'café naïve résumé coöperate',
    'cafe\u0301 nai\u0308ve',
    'Ångström Øresund Æsir Œuvre ßtraße',
    'ÀÉÎÕÜ àéîõü çÇ ñÑ',
    'ｈｅｌｌｏ　ｗｏｒｌｄ',
    'ＡＢＣ１２３！？',
    'ﬁnance ﬂower ﬀ ﬃ',
    '①②③ ⅰⅱⅲ ㈱ ㎏ ㍻',
    '½ ¼ ¾ ² ³ ¹',
    '™ © ® ℃ ℉ №',
    '日本語のテキストです。',
    '吾輩は猫である。名前はまだ無い。',
    'どこで生れたかとんと見当がつかぬ。',
    '東京都 大阪府 京都市',
    'ｶﾀｶﾅ ﾊﾝｶｸ',
    'カタカナ ひらがな 漢字',
    '中文文本，测试一下。',
    '한국어 텍스트입니다',
    'Привет, мир! Как дела?',
    'Γειά σου Κόσμε',
    'مرحبا بالعالم',
    'שלום עולם',
    'नमस्ते दुनिया',
    'สวัสดีชาวโลก',
    'Xin chào thế giới',
    'emoji 😀 😃 🎉',
    '👍🏽 skin tone',
    '👨\u200d👩\u200d👧\u200d👦 family',
    '🇯🇵 🇺🇸 flags',
    '❤️ ☺️ ✌︎',
    'zero\u200bwidth\u200cjoiner\u200d',
    'soft\u00adhyphen',
    'no\u00a0break\u00a0space',
    'thin\u2009space em\u2003space',
    'ideographic\u3000space',
    'control\x01\x02\x1fchars',
    'tab\x0bvertical\x0cform',
    'bell\x07 del\x7f',
    '\ufeffbom at start',
    'replacement \ufffd char',
    'private \ue000\uf8ff use',
    'math ∑∫√∞≠≤≥ ∀x∃y',
    'arrows ←↑→↓ ⇒ ⇔',
    'box ─│┌┐└┘ ░▒▓█',
    'music 𝄞 𝅘𝅥𝅮',
    'math bold 𝐀𝐁𝐂 𝟏𝟐𝟑',
    'old italic 𐌀𐌁𐌂',
    'a\u0300\u0301\u0302\u0303\u0304 stacked marks',
    '\u0301 leading mark',
    'Ǆ ǅ ǆ ǈ',
    'İstanbul ıi',
    'ΣΑΣ σας ς',
    META + 'already escaped',
    'text ending with ' + META,
    'double ' + META + META + ' marks',
    '<s> not special </s>',
    '<unk> <pad> <mask>',
    'a<sep>b',
    'x [MASK] y',
    '<sep>',
    ' [MASK] ',
    '<0x41> byte text',
    '~!@#$%^&*()_+`-=[]\\{}|;\':",./<>?',
    '.....,,,,;;;;!!!!????',
    '----____====',
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    'the the the the the the the the',
    'Supercalifragilisticexpialidocious antidisestablishmentarianism',
    'ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz',
    'MiXeD CaSe WoRdS',
    'snake_case camelCase PascalCase kebab-case',
    'mixed 日本 English 한국 text',
    '¿Qué tal? ¡Muy bien!',
    'Ça va? Très bien, merci.',
    'Grüße aus München',
    'Zürich Köln Düsseldorf',
    'Dvořák Łódź Škoda',
    ' leading space and trailing tab\t',
    '\u3000全角スペースで始まる',
    '末尾に全角スペース\u3000',
    'ＡＢＣ ｄｅｆ　ＧＨＩ',
    '\U0001f600' * 5,
    '日' * 20,
    'The year 1868, the Meiji era began; 明治元年.',
    # grapheme clusters: HF's Precompiled maps whole clusters under 6 bytes
    # and goes character by character otherwise; SentencePiece matches the
    # longest rule at each position
    'ｶﾞｷﾞｸﾞ ﾊﾟﾋﾟ ｳﾞ',
    'Ａ\u0301 Ｂ\u0308 ｃ\u0327',
    'e\u0301 o\u0302 u\u0308 n\u0303',
    '\u1100\u1161\u11a8 \u1100\u1161 \u1112\u1161\u11ab\u1100\u1173\u11af',
    '👩\u200d💻 🏳️\u200d🌈 ❤\ufe0f\u200d🔥',
    '🇯🇵🇺🇸🇫🇷 🇩',
    'क़ ख़ ग़ ज़',
    'น้ำ กำ ลาว ຳ',
    '\u0600١٢٣ \u06dd٤',
    'a\u200db c\u200cd',
    '1\ufe0f\u20e3 #\ufe0f\u20e3',
    'ﬀ\u0301 ㍿\u0301 ①\u0301',
    'ＡＢ\u0300\u0301 ½\u0301',
    '\r\n\u0301 \n\u0308x',
    '\u0915\u094d\u0937 \u0915\u094d\u200d\u0937',
]


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def fetch_models(work):
    subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:', SDIST,
                    '-d', work, '-q'], check=True)
    sdist = glob.glob(os.path.join(work, 'sentencepiece-*.tar.gz'))[0]
    out = {}
    with tarfile.open(sdist) as tf:
        for m in tf.getmembers():
            for name in ('botchan_en_unigram_1000.model', 'kyoto_ja_unigram_8000.model'):
                if m.name.endswith('/test/' + name):
                    path = os.path.join(work, name)
                    with open(path, 'wb') as f:
                        f.write(tf.extractfile(m).read())
                    out[name] = path
    return out


def load_proto(path, byte_fallback=False):
    m = pb.ModelProto()
    with open(path, 'rb') as f:
        m.ParseFromString(f.read())
    if byte_fallback:
        # the order vkinfer-spm-convert appends them: user-defined, then bytes
        for t in USER_DEFINED:
            p = m.pieces.add()
            p.piece, p.score, p.type = t, 0.0, 4
        for b in range(256):
            p = m.pieces.add()
            p.piece, p.score, p.type = '<0x%02X>' % b, 0.0, 6
        m.trainer_spec.byte_fallback = True
    return m


def hf_tokenizer(m, style):
    """The tokenizer.json transformers' converters write for this model."""
    charsmap = m.normalizer_spec.precompiled_charsmap
    bf = m.trainer_spec.byte_fallback
    if style == 'xlmr':
        # XLMRobertaConverter: fairseq ids, pieces[3:] shifted by one
        vocab = [('<s>', 0.0), ('<pad>', 0.0), ('</s>', 0.0), ('<unk>', 0.0)]
        vocab += [(p.piece, p.score) for p in m.pieces[3:]] + [('<mask>', 0.0)]
        tok = Tokenizer(Unigram(vocab, unk_id=3, byte_fallback=bf))
        tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                                for t in ('<s>', '<pad>', '</s>', '<unk>')])
        for p in m.pieces[3:]:
            if p.type in (2, 3):
                tok.add_special_tokens([AddedToken(p.piece, normalized=False, special=True)])
            elif p.type == 4:
                tok.add_tokens([AddedToken(p.piece, normalized=False, special=False)])
        tok.add_special_tokens([AddedToken('<mask>', normalized=False, special=True)])
        tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap),
                                               normalizers.Replace(Regex(' {2,}'), ' ')])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme='always')
        tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme='always')
        tok.post_processor = processors.TemplateProcessing(
            single='<s> $A </s>', pair='<s> $A </s> </s> $B </s>', special_tokens=[('<s>', 0), ('</s>', 2)])
        return tok
    # T5Converter (no extra ids): pieces as they are
    vocab = [(p.piece, p.score) for p in m.pieces]
    tok = Tokenizer(Unigram(vocab, unk_id=m.trainer_spec.unk_id, byte_fallback=bf))
    for p in m.pieces:  # control and unknown pieces special, user-defined ones not
        if p.type in (2, 3):
            tok.add_special_tokens([AddedToken(p.piece, normalized=False, special=True)])
        elif p.type == 4:
            tok.add_tokens([AddedToken(p.piece, normalized=False, special=False)])
    if style == 't5':
        tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap),
                                               normalizers.Strip(left=False, right=True),
                                               normalizers.Replace(Regex(' {2,}'), META)])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme='always')
    else:  # t5-legacy: the older T5 files
        tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap)])
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Metaspace(replacement=META,
                                                                              prepend_scheme='always')])
    if bf:
        tok.decoder = decoders.Sequence([decoders.Replace(META, ' '), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(' ', 1, 0)])
    else:
        tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme='always')
    eos = m.trainer_spec.eos_id
    tok.post_processor = processors.TemplateProcessing(
        single='$A </s>', pair='$A </s> $B </s>', special_tokens=[('</s>', eos)])
    return tok


def spm_cases(m):
    sp = spm.SentencePieceProcessor(model_proto=m.SerializeToString())
    # unknown pieces decode to nothing (SentencePiece writes unk_surface,
    # " \u2047 " by default; vkinfer skips them, as HF does)
    m2 = pb.ModelProto()
    m2.CopyFrom(m)
    m2.trainer_spec.unk_surface = ''
    dec = spm.SentencePieceProcessor(model_proto=m2.SerializeToString())
    eos = sp.eos_id()
    user = {p.piece: i for i, p in enumerate(m.pieces) if p.type == 4}
    cases = []
    for t in TEXTS:
        ids = sp.encode(t)
        case = {'text': t, 'ids': ids}
        if user and any(u in t for u in user):
            # User-defined pieces: llama.cpp (and HF, as added tokens) split
            # them out first and encode each fragment with its own dummy
            # prefix; SentencePiece normalizes the whole text with them in
            # place. vkinfer follows llama.cpp: the ids are SentencePiece's
            # on each fragment; SentencePiece's own are kept beside them.
            pat = '(' + '|'.join(re.escape(u) for u in sorted(user, key=len, reverse=True)) + ')'
            ids = []
            for frag in re.split(pat, t):
                ids += [user[frag]] if frag in user else sp.encode(frag) if frag else []
            case = {'text': t, 'ids': ids, 'ids_sentencepiece_whole_text': case['ids']}
        case.update({'ids_with_special': ids + [eos], 'decode': dec.decode(ids)})
        cases.append(case)
    return cases


def hf_cases(tok):
    cases = []
    for t in TEXTS:
        ids = tok.encode(t, add_special_tokens=False).ids
        cases.append({'text': t, 'ids': ids, 'ids_with_special': tok.encode(t).ids,
                      'decode': tok.decode(ids, skip_special_tokens=True)})
    return cases


def write(path, source, cases):
    # one case a line: short, diffable files
    with open(path, 'w', encoding='utf-8') as f:
        f.write('{"source": %s,\n "cases": [\n' % json.dumps(source))
        f.write(',\n'.join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write('\n]}\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--check-tool', metavar='BUILD_DIR')
    ap.add_argument('--out', default=os.path.join(os.path.dirname(__file__), '..', '..', 'tests', 'tokenizer', 'data'))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix='ugm-vectors-')
    models = fetch_models(work)
    variants = [  # name, model file, byte fallback, HF styles
        ('botchan', 'botchan_en_unigram_1000.model', False, ['xlmr', 't5-legacy']),
        ('kyoto', 'kyoto_ja_unigram_8000.model', False, ['t5']),
        ('botchan_bf', 'botchan_en_unigram_1000.model', True, ['t5']),
    ]
    versions = 'sentencepiece %s, tokenizers %s' % (spm.__version__, __import__('tokenizers').__version__)
    for name, fname, bf, styles in variants:
        path = models[fname]
        m = load_proto(path, bf)
        src = '%s test/%s (sha256 %s)%s; %s' % (SDIST, fname, sha256(path),
                                                ' + user-defined %s + byte fallback' % USER_DEFINED if bf else '',
                                                versions)
        write(os.path.join(args.out, 'ugm_%s.spm.json' % name), src + '; sentencepiece ids', spm_cases(m))
        for style in styles:
            tok = hf_tokenizer(m, style)
            cases = hf_cases(tok)
            write(os.path.join(args.out, 'ugm_%s.hf-%s.json' % (name, style)),
                  src + '; HF tokenizers ids, %s tokenizer.json' % style, cases)
            if args.check_tool:
                tool = os.path.join(args.check_tool, 'tools', 'spm', 'vkinfer-spm-convert')
                d = os.path.join(work, '%s-%s' % (name, style))
                cmd = [tool, path, '--hf', d, '--style', style]
                if bf:
                    cmd += ['--byte-fallback'] + sum((['--user-defined', u] for u in USER_DEFINED), [])
                subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
                mine = Tokenizer.from_file(os.path.join(d, 'tokenizer.json'))
                bad = [c['text'] for c in cases
                       if mine.encode(c['text'], add_special_tokens=False).ids != c['ids']
                       or mine.encode(c['text']).ids != c['ids_with_special']]
                print('%s %s: the tool\'s tokenizer.json agrees on %d/%d texts' %
                      (name, style, len(cases) - len(bad), len(cases)), bad[:3])
        print(name, 'written')


if __name__ == '__main__':
    main()
