"""tickvault.monitoring"""
