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
"""

import argparse
import datetime
import os
import sys
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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lines", type=int, help="number of factprest lines")
    p.add_argument("--out", default=".", help="output folder (created if missing)")
    p.add_argument("--id-cram", default="03")
    p.add_argument("--id-site", default="21999000")
    p.add_argument("--prestation", default="PPP100", choices=sorted(MAX_HOURS))
    p.add_argument("--date", default="150521", help="JJMMAA of the file name (default 150521)")
    p.add_argument("--seed", type=int, default=2021)
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
    max_cents = MAX_HOURS[a.prestation] * 100
    total = Decimal(0)
    with open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as f:
        w = f.write
        w('<?xml version="1.0" encoding="UTF-8"?>\n')
        w('<factbord xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
          'xsi:noNamespaceSchemaLocation="FactficTrans.xsd">\n')
        w(f" <rf-borfact>{rf}</rf-borfact>\n <log-fact>gen_factbord.py_1.0</log-fact>\n")
        w(f" <id-cram>{a.id_cram}</id-cram>\n <id-site>{a.id_site}</id-site>\n")
        w(f" <rf-prstpap>{a.prestation}</rf-prstpap>\n")
        for i in range(a.lines):
            sex = 1 + rng.below(2)
            nir = f"{sex}{rng.below(100):02d}{1 + rng.below(12):02d}{rng.below(100):02d}{rng.below(1000000):06d}"
            if rng.below(50) == 0:  # a Corsican NIR now and then
                nir = nir[:5] + ("2A" if rng.below(2) else "2B") + nir[7:]
            first, last = months_before(day, 1 + rng.below(12))
            cents = 1 + rng.below(max_cents)
            hours = Decimal(cents) / 100
            total += hours
            w(" <factprest>\n"
              f"  <nir-per>{nir}</nir-per>\n"
              f"  <nom-per>{SURNAMES[rng.below(len(SURNAMES))]}</nom-per>\n"
              f"  <pn-per>{FIRST[rng.below(len(FIRST))]}</pn-per>\n"
              f"  <rf-prstpap>{a.prestation}</rf-prstpap>\n"
              f"  <id-prest>{a.id_site}</id-prest>\n"
              f"  <dtd-interv>{first.isoformat()}</dtd-interv>\n"
              f"  <dtf-interv>{last.isoformat()}</dtf-interv>\n"
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
