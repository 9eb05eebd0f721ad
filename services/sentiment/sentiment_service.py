#!/usr/bin/env python3
"""The sentiment inference service: VADER (vaderSentiment 3.3.2, lexicon shipped in the wheel)
behind a small HTTP/1.1 JSON API. See README.md in this folder for the API.

Standard library server; connections are served by a fixed pool of threads and kept alive, and
every input is validated before the model sees it.
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

MODEL = "vaderSentiment 3.3.2 (VADER compound score)"
MAX_TEXTS = 4096
MAX_TEXT_CHARS = 20000
MAX_BODY_BYTES = 16 << 20

ANALYZER = SentimentIntensityAnalyzer()


def stars_for(compound):
    """Maps VADER's compound score in [-1, 1] to 1..5 stars: five equal bands of width 0.4."""
    if compound < -0.6:
        return 1
    if compound < -0.2:
        return 2
    if compound <= 0.2:
        return 3
    if compound <= 0.6:
        return 4
    return 5


def score(text):
    compound = ANALYZER.polarity_scores(text)["compound"]
    return {"sentiment": compound, "stars": stars_for(compound)}


class BadRequest(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_batch(body):
    """The texts of a request body, or BadRequest saying what is wrong."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(400, f"the body is not JSON: {e}")
    if not isinstance(doc, dict):
        raise BadRequest(400, 'the body must be a JSON object {"texts": [...]}')
    unknown = sorted(set(doc) - {"texts"})
    if unknown:
        raise BadRequest(400, f"unknown field(s) {unknown}; the only field is `texts`")
    texts = doc.get("texts")
    if not isinstance(texts, list):
        raise BadRequest(400, "`texts` must be an array of strings")
    if len(texts) > MAX_TEXTS:
        raise BadRequest(413, f"{len(texts)} texts; at most {MAX_TEXTS} per request")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequest(400, f"texts[{i}] is {type(text).__name__}, expected a string")
        if len(text) > MAX_TEXT_CHARS:
            raise BadRequest(413, f"texts[{i}] has {len(text)} characters; at most {MAX_TEXT_CHARS}")
    return texts


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    # Headers and body leave in two writes: without this, Nagle's algorithm and the client's
    # delayed ACK add ~40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True
    server_version = "mysimbdp-sentiment/1.0"

    def log_message(self, fmt, *args):  # the access log only at debug level
        logging.debug("%s %s", self.address_string(), fmt % args)

    def answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def fail(self, status, message):
        self.answer(status, {"error": message})

    def do_GET(self):
        if self.path == "/health":
            self.answer(200, {"status": "ok", "model": MODEL})
        else:
            self.fail(404, f"no such path {self.path}; POST /v1/sentiment, GET /health")

    def do_POST(self):
        if self.path != "/v1/sentiment":
            self.drain_body()
            self.fail(404, f"no such path {self.path}; POST /v1/sentiment, GET /health")
            return
        kind = self.headers.get("Content-Type", "")
        if kind.split(";")[0].strip().lower() != "application/json":
            self.drain_body()
            self.fail(415, f"Content-Type must be application/json, not `{kind}`")
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self.fail(411, "a Content-Length header is required")
            return
        length = int(length)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self.fail(413, f"the body is {length} bytes; at most {MAX_BODY_BYTES}")
            return
        body = self.rfile.read(length)
        try:
            texts = parse_batch(body)
        except BadRequest as e:
            self.fail(e.status, e.message)
            return
        self.answer(200, {"results": [score(t) for t in texts]})

    def drain_body(self):
        length = self.headers.get("Content-Length", "0")
        if length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def do_PUT(self):
        self.drain_body()
        self.fail(405, "use POST /v1/sentiment or GET /health")

    do_DELETE = do_PATCH = do_PUT


class PooledHTTPServer(HTTPServer):
    """An HTTPServer whose connections are served by a fixed pool of threads."""

    def __init__(self, address, handler, threads):
        super().__init__(address, handler)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="conn")

    def process_request(self, request, client_address):
        self.pool.submit(self.serve_one, request, client_address)

    def serve_one(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:  # a broken connection must not end the pool thread
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SENTIMENT_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SENTIMENT_PORT", "9300")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("SENTIMENT_THREADS", "8")))
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    server = PooledHTTPServer((args.host, args.port), Handler, args.threads)
    # SIGTERM: stop accepting, then exit 0. Kept-alive connections are closed with the process.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    logging.info("sentiment service (%s) on http://%s:%d, %d threads", MODEL, args.host, args.port, args.threads)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    logging.info("stopped")
    logging.shutdown()
    # Pool threads may sit in kept-alive connections: end the process without waiting for them.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
