"""tickvault.api"""
