"""Verifies Standard Webhooks deliveries with the independent `standardwebhooks` package.

Reads one JSON object per line on stdin: {"secret", "headers", "body"}; prints the verified
payload's `type` per line; exits non-zero at the first delivery that does not verify.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook

for line in sys.stdin:
    if not line.strip():
        continue
    delivery = json.loads(line)
    payload = Webhook(delivery["secret"]).verify(delivery["body"], delivery["headers"])
    print(payload["type"])
