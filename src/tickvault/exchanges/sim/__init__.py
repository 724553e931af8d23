"""tickvault.exchanges.sim"""
