"""tickvault.storage.postgres"""
