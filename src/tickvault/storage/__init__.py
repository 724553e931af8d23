"""tickvault.storage"""
