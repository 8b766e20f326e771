"""Classifier accuracy: Outguard's scanner next to SpamAssassin, k-fold
cross-validation on the same folds of the same corpus.

Outguard: `outguard-train scan-eval --folds K --list-errors` over the whole
corpus (the training tools' binary, built with `--features tools`).
SpamAssassin (local tests only, Bayes trained from scratch per fold on that
fold's training part) is tested on every message of each held-out fold
(about two minutes here). The BENCH_SA_* variables cap both to a sample of
each fold for a quicker run; Outguard's verdicts on exactly the messages
SpamAssassin was tested on are reported beside it, as well as over the
whole corpus.

The folds are scan-eval's own: files sorted by path, directories in the
order given, a deterministic xorshift shuffle per class, fold = position
mod K (src/scan/training.rs).
"""

import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

FOLDS = int(os.environ.get("BENCH_FOLDS", "5"))
# Messages per fold for SpamAssassin; 0 = all of them (the default).
SA_TRAIN_HAM = int(os.environ.get("BENCH_SA_TRAIN_HAM", "0"))
SA_TRAIN_SPAM = int(os.environ.get("BENCH_SA_TRAIN_SPAM", "0"))
SA_TEST_HAM = int(os.environ.get("BENCH_SA_TEST_HAM", "0"))
SA_TEST_SPAM = int(os.environ.get("BENCH_SA_TEST_SPAM", "0"))
HAM_SEED, SPAM_SEED = 0x9E3779B97F4A7C15, 0x2545F4914F6CDD1D
MASK = (1 << 64) - 1
# Running sa_eval.pl processes, for run.py to stop by PID if interrupted.
CHILDREN = []


def shuffled(n, seed):
    """Same permutation as training::shuffled (xorshift64, Fisher-Yates)."""
    idx = list(range(n))
    state = seed | 1
    for i in range(n - 1, 0, -1):
        state ^= (state << 13) & MASK
        state ^= state >> 7
        state ^= (state << 17) & MASK
        j = state % (i + 1)
        idx[i], idx[j] = idx[j], idx[i]
    return idx


def load(dirs):
    out = []
    for d in dirs:
        out += sorted(p for p in Path(d).iterdir() if p.is_file())
    return out


def folds_of(paths, seed):
    """For each fold, its paths in shuffled order."""
    order = shuffled(len(paths), seed)
    folds = [[] for _ in range(FOLDS)]
    for pos, i in enumerate(order):
        folds[pos % FOLDS].append(paths[i])
    return folds


def spread(seq, n):
    """n items spread evenly over seq (deterministic sample); n = 0: all."""
    if n == 0 or len(seq) <= n:
        return list(seq)
    return [seq[(k * len(seq)) // n] for k in range(n)]


def outguard_eval(train_bin, ham_dirs, spam_dirs):
    p = subprocess.run(
        [str(train_bin), "scan-eval", "--folds", str(FOLDS), "--list-errors",
         "--ham", *map(str, ham_dirs), "--spam", *map(str, spam_dirs)],
        capture_output=True, text=True, timeout=900, check=True,
    )  # fmt: skip
    text = p.stdout + p.stderr
    # Paths of misclassified messages are listed one per line.
    wrong = {m for m in re.findall(r"(/\S+)", text) if Path(m).is_file()}
    return text, wrong


def sa_fold(k, work, ham_folds, spam_folds):
    train_ham = [p for f in range(FOLDS) if f != k for p in ham_folds[f]]
    train_spam = [p for f in range(FOLDS) if f != k for p in spam_folds[f]]
    items = (
        [("train-ham", p) for p in spread(train_ham, SA_TRAIN_HAM)]
        + [("train-spam", p) for p in spread(train_spam, SA_TRAIN_SPAM)]
        + [("test-ham", p) for p in spread(ham_folds[k], SA_TEST_HAM)]
        + [("test-spam", p) for p in spread(spam_folds[k], SA_TEST_SPAM)]
    )
    d = work / f"sa-fold{k}"
    d.mkdir(parents=True, exist_ok=True)
    lst = d / "list"
    lst.write_text("".join(f"{kind} {p}\n" for kind, p in items))
    p = subprocess.Popen(
        ["perl", str(Path(__file__).parent / "sa_eval.pl"), str(d), str(lst)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    CHILDREN.append(p)
    stdout, _ = p.communicate(timeout=1200)
    if p.returncode != 0:
        raise RuntimeError(f"sa_eval.pl failed for fold {k} ({p.returncode})")
    out = []
    for line in stdout.splitlines():
        kind, score, is_spam, path = line.split(" ", 3)
        out.append((kind == "test-spam", float(score), is_spam == "1", path))
    return out


def rates(label, results):
    ham = [r for r in results if not r[0]]
    spam = [r for r in results if r[0]]
    caught = sum(1 for r in spam if r[2])
    fps = sum(1 for r in ham if r[2])
    return {
        "label": label,
        "ham": len(ham),
        "spam": len(spam),
        "caught": caught,
        "fps": fps,
        "catch": caught / max(len(spam), 1),
        "fp": fps / max(len(ham), 1),
    }


def run(train_bin, corpus, work, log):
    ham_dirs = [corpus / "ham", corpus / "hard-ham"]
    spam_dirs = [corpus / "spam"]
    ham, spam = load(ham_dirs), load(spam_dirs)
    ham_folds, spam_folds = folds_of(ham, HAM_SEED), folds_of(spam, SPAM_SEED)
    log(f"accuracy: outguard-train scan-eval, {FOLDS} folds, {len(ham)} ham, {len(spam)} spam")
    text, wrong = outguard_eval(train_bin, ham_dirs, spam_dirs)
    log(f"accuracy: SpamAssassin, {FOLDS} folds (2 at a time)")
    with ThreadPoolExecutor(max_workers=2) as ex:
        parts = ex.map(lambda k: sa_fold(k, work, ham_folds, spam_folds), range(FOLDS))
        sa = [r for part in parts for r in part]
    # Outguard's verdict on the very messages SpamAssassin was tested on.
    og_same = [(s, 0.0, (p in wrong) != s, p) for s, _, _, p in sa]
    og_all = [(False, 0.0, str(p) in wrong, str(p)) for p in ham] + [
        (True, 0.0, str(p) not in wrong, str(p)) for p in spam
    ]
    og = rates("Outguard built-in scanner (same messages as SpamAssassin)", og_same)
    if (og["ham"], og["spam"]) == (len(ham), len(spam)):
        og["label"] = "Outguard built-in scanner"
    return {
        "folds": FOLDS,
        "note": (
            f"SpamAssassin {spamassassin_version()} with local tests only and Bayes "
            f"trained per fold on {count(SA_TRAIN_HAM)} ham + {count(SA_TRAIN_SPAM)} "
            f"spam of the training folds, tested on {count(SA_TEST_HAM)} ham + "
            f"{count(SA_TEST_SPAM)} spam of each held-out fold; Outguard trained on "
            "all of the training folds"
        ),
        "outguard": og,
        "outguard_all": rates("Outguard built-in scanner (whole corpus)", og_all),
        "spamassassin": rates("SpamAssassin (local tests + Bayes)", sa),
        "outguard_report": text[-3000:],
    }


def count(n):
    return "all" if n == 0 else f"up to {n}"


def spamassassin_version():
    p = subprocess.run(["spamassassin", "--version"], capture_output=True, text=True)
    m = re.search(r"version (\S+)", p.stdout)
    return m.group(1) if m else "?"
