#!/usr/bin/env python3
"""Generate a valid billing file (factbord) of N lines, deterministically.

The file follows the billing specification (chapters 2, 6, 7 and 9) and
FactficTrans.xsd: its name is <id-cram>_<JJMMAA>_<code>_<id-site>.xml and
equals rf-borfact; every line passes the stateless controls of
`ppas-gateway check` when the day of receipt is on or after the JJMMAA date
(periods are whole months before it); the footer totals are exact.

Same arguments, same bytes: the benchmark and the tests rely on it.

    scripts/gen_factbord.py 100000 --out target/bench
    -> target/bench/03_150521_100_21999000.xml (about 36 MB)

With --plans, the lines bill a population of beneficiaries whose plans are
written to that CSV (the `import beneficiaries` format), so that every line
is also accepted by the stateful controls of `process`, as in a real file:

- each beneficiary has a random, valid-looking NIR (sex 1/2, year and month
  of birth, department, 2A/2B now and then, commune, order: 13 characters),
  a surname of its own and a first name;
- it is billed for 1 to 8 (--max-months) distinct months of the 10 before
  the file's month, one line a month; the file is sorted by month, then by surname and first
  name, as providers' software sorts it: a beneficiary's lines are spread
  through the file and the NIRs come in an order unrelated to the file's;
- its plans (PPP100, PPP119 or both; a fifth of them split in two halves of
  the year) cover those months with hours to spare; the CSV lists them in
  yet another (shuffled) order, so plan ids are unrelated to both.

    scripts/gen_factbord.py 100000 --out target/bench --plans target/bench/beneficiaries.csv

--nirs consecutive gives the same population and file but NIRs numbered
1000000000000, 1000000000001, … in the order of the beneficiaries' first
lines, and the plans in that order (the shape earlier benchmarks used: every
index insert an append), for comparison.
"""

import argparse
import datetime
import os
import sys
import unicodedata
from decimal import Decimal

SURNAMES = ["Dupont", "Durand", "Lefèvre", "Müller", "Martin", "Bernard", "Petit", "Robert", "Richard",
            "Château", "Moreau", "Laurent", "Simon", "Michel", "Garçon", "Leroy", "Roux", "David", "Bertrand",
            "Morel", "Fournier", "Girard", "Bonnet", "Dupuis", "Lambert", "Fontaine", "Rousseau", "Vincent"]
FIRST = ["Pierre", "Marie", "Zoé", "Jean", "Hélène", "François", "Anaïs", "Noël", "Louise", "Gérard",
         "Élodie", "Joëlle", "Michel", "Claire", "René", "Cécile", "Jérôme", "Agnès", "Loïc", "Maëlle"]
MAX_HOURS = {"PPP100": 30, "PPP119": 45}


class Lcg:
    """64-bit linear congruential generator (Knuth MMIX): tiny and stable."""

    def __init__(self, seed):
        self.state = seed & 0xFFFFFFFFFFFFFFFF

    def next(self):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        return self.state >> 33

    def below(self, n):
        return self.next() % n


def months_before(day, k):
    """(first day, last day) of the k-th month before the month of `day` (k >= 1)."""
    idx = day.year * 12 + day.month - 1 - k
    y, m = divmod(idx, 12)
    first = datetime.date(y, m + 1, 1)
    nxt = datetime.date(y + (m + 1) // 12, (m + 1) % 12 + 1, 1)
    return first, nxt - datetime.timedelta(days=1)


# Population mode: parts of generated surnames, first names.
SUR_A = ["Ber", "Bou", "Cha", "Ché", "Dar", "Del", "Du", "Fau", "Fon", "Gau", "Gi", "Gué", "Jo", "La",
         "Le", "Lé", "Ma", "Mé", "Mo", "Pe", "Pé", "Ri", "Ro", "Sa", "Sé", "Ta", "Thi", "Va", "Vi", "Ba",
         "Co", "Cor", "Fer", "Hu", "Jau", "Lan", "Mar", "Nau", "Pra", "Tou"]
SUR_B = ["", "ri", "la", "mo", "ni", "be", "ro", "gui", "ve", "che", "da", "lo", "ma", "ne", "pi", "ti",
         "vel", "mar", "ber", "zo", "cu", "dé", "lè", "ssi", "gno", "qui", "ra", "so", "té", "bi"]
SUR_C = ["ard", "eau", "el", "et", "ier", "in", "ot", "oux", "ès", "ël", "ault", "ac", "y", "on", "ey",
         "ain", "elle", "ière", "ange", "ois", "ant", "aud", "an", "as", "é", "ouze", "ieu", "aine", "ic",
         "eix", "ert", "ond", "ude", "in", "ol", "ère"]
FIRST_ALL = FIRST + ["Jeanne", "Paul", "Yvette", "Thérèse", "André", "Odette", "Lucien", "Germaine",
                     "Raymond", "Simone", "Marcel", "Josette", "Émile", "Colette", "Gisèle", "Roger",
                     "Huguette", "Maurice", "Ginette", "Léon", "Solange", "Fernand", "Mauricette",
                     "Yves", "Monique", "Bernard", "Françoise", "Christiane", "Lucienne", "Jacqueline",
                     "Henri", "Suzanne", "Georges", "Denise", "Albert", "Paulette", "Marguerite", "Josiane"]
# Months billed: among the MONTHS months before the file's; plan year: from
# the first of them, 12 months.
MONTHS = 10


def month_span(day, k):
    """(first day, last day) of the month k months from the month of `day` (k may be < 0)."""
    idx = day.year * 12 + day.month - 1 + k
    y, m = divmod(idx, 12)
    first = datetime.date(y, m + 1, 1)
    nxt = datetime.date(y + (m + 1) // 12, (m + 1) % 12 + 1, 1)
    return first, nxt - datetime.timedelta(days=1)


def random_nir(rng):
    """13 characters: sex, year, month, department (2A/2B now and then), commune, order."""
    sex = 1 + rng.below(2)
    year = rng.below(100)
    month = 1 + rng.below(12)
    r = rng.below(100)
    if r < 2:
        dept = "2A" if r == 0 else "2B"
    else:
        d = 1 + rng.below(94)
        dept = f"{d + 1 if d >= 20 else d:02d}"  # 01..95 without 20
    return f"{sex}{year:02d}{month:02d}{dept}{1 + rng.below(990):03d}{1 + rng.below(999):03d}"


def sort_key(text):
    """Names in the order of a directory: accents ignored, then as written."""
    plain = unicodedata.normalize("NFD", text).encode("ascii", "ignore").decode().upper()
    return plain, text


def population(a, day, rng):
    """The beneficiaries billed for a.prestation and their lines, N lines in all.

    Returns (lines, plans, nirs): lines in file order as (month from the
    file's, surname, first name, beneficiary, hundredths); plans in import
    order as (beneficiary, surname, first name, prestation, start, end,
    hours, hours consumed); nirs: each beneficiary's NIR.
    """
    surnames, nirs = set(), set()
    plans, lines, people = [], [], []
    billed = 0
    while billed < a.lines:
        while True:
            name = SUR_A[rng.below(len(SUR_A))] + SUR_B[rng.below(len(SUR_B))] + SUR_C[rng.below(len(SUR_C))]
            if rng.below(8) == 0 or name in surnames:  # compound surnames now and then
                name += "-" + SUR_A[rng.below(len(SUR_A))] + SUR_C[rng.below(len(SUR_C))].lower()
            if name not in surnames and len(name) <= 54:
                break
        surnames.add(name)
        first = FIRST_ALL[rng.below(len(FIRST_ALL))]
        while True:
            nir = random_nir(rng)
            if nir not in nirs:
                break
        nirs.add(nir)
        who = len(people)
        people.append(nir)
        r = rng.below(10)
        has = {"PPP100": r < 8, "PPP119": r >= 6}
        split = rng.below(5) == 0
        for prest in sorted(MAX_HOURS):
            if not has[prest]:
                continue
            hours = MAX_HOURS[prest]
            consumed = rng.below(21) if rng.below(3) == 0 else 0
            spans = [(-MONTHS, 12 - MONTHS - 1)] if not split else [(-MONTHS, -MONTHS + 5), (-MONTHS + 6, 1)]
            for lo, hi in spans:
                start, end = month_span(day, lo)[0], month_span(day, hi)[1]
                total = hours * (hi - lo + 1) + 20
                plans.append((who, name, first, prest, start.isoformat(), end.isoformat(), total, consumed))
        if not has[a.prestation]:
            continue
        k = min(1 + rng.below(a.max_months), a.lines - billed)
        months = list(range(-MONTHS, 0))
        for i in range(k):  # k distinct months (partial Fisher-Yates)
            j = i + rng.below(len(months) - i)
            months[i], months[j] = months[j], months[i]
        for m in sorted(months[:k]):
            lines.append((m, name, first, who, 1 + rng.below(MAX_HOURS[a.prestation] * 100)))
        billed += k
    lines.sort(key=lambda l: (l[0], sort_key(l[1]), sort_key(l[2])))
    if a.nirs == "consecutive":
        rank = {}
        for l in lines:
            rank.setdefault(l[3], len(rank))
        for who in range(len(people)):
            rank.setdefault(who, len(rank))
        people = [None] * len(people)
        for who, r in rank.items():
            people[who] = f"{1000000000000 + r}"
        plans.sort(key=lambda p: (rank[p[0]], p[3], p[4]))
    else:
        for i in range(len(plans) - 1, 0, -1):  # imported in yet another order
            j = rng.below(i + 1)
            plans[i], plans[j] = plans[j], plans[i]
    return lines, plans, people


def random_lines(a, day, rng):
    """Lines of random beneficiaries (NIRs and names drawn for each line)."""
    max_cents = MAX_HOURS[a.prestation] * 100
    for _ in range(a.lines):
        sex = 1 + rng.below(2)
        nir = f"{sex}{rng.below(100):02d}{1 + rng.below(12):02d}{rng.below(100):02d}{rng.below(1000000):06d}"
        if rng.below(50) == 0:  # a Corsican NIR now and then
            nir = nir[:5] + ("2A" if rng.below(2) else "2B") + nir[7:]
        period = months_before(day, 1 + rng.below(12))
        hours = Decimal(1 + rng.below(max_cents)) / 100
        yield nir, SURNAMES[rng.below(len(SURNAMES))], FIRST[rng.below(len(FIRST))], period, hours


def population_lines(lines, people, a, day):
    """The lines of `population`, in file order."""
    for m, name, first, who, cents in lines:
        yield people[who], name, first, month_span(day, m), Decimal(cents) / 100


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lines", type=int, help="number of factprest lines")
    p.add_argument("--out", default=".", help="output folder (created if missing)")
    p.add_argument("--id-cram", default="03")
    p.add_argument("--id-site", default="21999000")
    p.add_argument("--prestation", default="PPP100", choices=sorted(MAX_HOURS))
    p.add_argument("--date", default="150521", help="JJMMAA of the file name (default 150521)")
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument("--plans", metavar="CSV", help="bill a population of beneficiaries whose plans are written there")
    p.add_argument("--nirs", default="scattered", choices=["scattered", "consecutive"],
                   help="with --plans: random NIRs (default) or consecutive ones in file order")
    p.add_argument("--max-months", type=int, default=8, choices=range(1, MONTHS + 1), metavar="1-10",
                   help="with --plans: months billed per beneficiary, at most (default 8; 1: one line each)")
    a = p.parse_args()
    if a.lines < 0:
        p.error("lines must be >= 0")
    day = datetime.datetime.strptime(a.date, "%d%m%y").date()
    code = a.prestation[3:]
    rf = f"{a.id_cram}_{a.date}_{code}_{a.id_site}"
    if len(rf) > 25:
        p.error(f"name {rf} is longer than 25 characters")
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, rf + ".xml")
    tmp = path + ".part"
    rng = Lcg(a.seed)
    total = Decimal(0)
    if a.plans:
        lines, plans, people = population(a, day, rng)
        ptmp = a.plans + ".part"
        with open(ptmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("id-cram;id-site;nir-per;nom-per;pn-per;rf-prstpap;dt-debut;dt-fin;mt-total;mt-consomme\n")
            for who, name, first, prest, start, end, hours, consumed in plans:
                f.write(f"{a.id_cram};{a.id_site};{people[who]};{name};{first};{prest};{start};{end};{hours};{consumed}\n")
        os.replace(ptmp, a.plans)
    with open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as f:
        w = f.write
        w('<?xml version="1.0" encoding="UTF-8"?>\n')
        w('<factbord xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
          'xsi:noNamespaceSchemaLocation="FactficTrans.xsd">\n')
        w(f" <rf-borfact>{rf}</rf-borfact>\n <log-fact>gen_factbord.py_1.0</log-fact>\n")
        w(f" <id-cram>{a.id_cram}</id-cram>\n <id-site>{a.id_site}</id-site>\n")
        w(f" <rf-prstpap>{a.prestation}</rf-prstpap>\n")
        lines_of = population_lines(lines, people, a, day) if a.plans else random_lines(a, day, rng)
        for nir, name, first, (start, end), hours in lines_of:
            total += hours
            w(" <factprest>\n"
              f"  <nir-per>{nir}</nir-per>\n"
              f"  <nom-per>{name}</nom-per>\n"
              f"  <pn-per>{first}</pn-per>\n"
              f"  <rf-prstpap>{a.prestation}</rf-prstpap>\n"
              f"  <id-prest>{a.id_site}</id-prest>\n"
              f"  <dtd-interv>{start.isoformat()}</dtd-interv>\n"
              f"  <dtf-interv>{end.isoformat()}</dtf-interv>\n"
              f"  <nb-quant>{hours}</nb-quant>\n"
              "  <mt-tu>1</mt-tu>\n"
              "  <mt-total>0</mt-total>\n"
              "  <bo-regul>F</bo-regul>\n"
              " </factprest>\n")
        w(f" <nb-ligbor>{a.lines}</nb-ligbor>\n <mt-totamd>{total}</mt-totamd>\n <mt-totprest>0</mt-totprest>\n")
        w("</factbord>\n")
    os.replace(tmp, path)
    print(path)


if __name__ == "__main__":
    sys.exit(main())
