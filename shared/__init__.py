"""Dreamwire shared: protocol, codec, job description and client. stdlib + numpy + pyzmq only."""
