"""Flowable: the REST client and the local engine process."""
