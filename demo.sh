#!/usr/bin/env bash
# Set edi up in .venv and run one batch on the sample flows (flows/) in a fresh demo workspace (./var).
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "edi needs Python >= 3.11 ($python is older)"; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
export EDI_CONFIG=config.toml
rm -rf var                                   # ./var is the demo workspace named by config.toml: start afresh
.venv/bin/edi init
.venv/bin/python flows/drop.py var/inbox     # flows/<sender>/ holds what that sender drops (see flows/drop.py)
sleep 2                                      # config.toml: min_age_seconds = 2 (younger files wait for the next run)
echo
.venv/bin/edi batch
echo
.venv/bin/edi flows
echo
echo "later: the platform of the Ville d'Exemple and of its hospital (partner exemple-pa) returns lifecycle statuses"
.venv/bin/python flows/drop.py --later var/inbox   # CDAR messages: 204, 211, a 210 refusal, and three refused
sleep 2
.venv/bin/edi batch                          # each accepted status is relayed to the invoice's sender, in acks/
echo
.venv/bin/edi invoices                       # each invoice's current status: 200 Déposée ... 211, 210 Refusée
echo
echo "acknowledgements and CDAR lifecycle messages: var/acks/<sender>/   delivered invoices: var/queues/<queue>/new/"
echo "one flow, with each invoice's lifecycle: .venv/bin/edi show <flow id>   a status by hand: .venv/bin/edi status set --help"
echo "the web console on these flows: .venv/bin/edi users add admin --role operator   (asks for a password), then"
echo "                                .venv/bin/edi serve   and open http://127.0.0.1:8080/"
