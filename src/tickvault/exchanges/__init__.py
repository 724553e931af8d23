"""tickvault.exchanges"""
