"""Helpers the tests share: the running stack, services, browser, fakes and data factories."""
